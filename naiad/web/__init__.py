"""The web console: static assets (plain JS modules and CSS, no build step) and the login
that turns the server's token into a session cookie. Mounted by ``naiad.web.console.mount``."""
