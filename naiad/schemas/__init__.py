"""Wire models: one copy, shared by the server and the SDK."""
