"""One router per resource: validate with a schema, call the store or a service, return a schema."""
