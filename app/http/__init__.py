"""The HTTP service around app.inference: schemas, routes, dependencies, middleware, error
handlers, logging and the uvicorn protocol it runs under."""
