"""One router per concern. Routers whose schemas come from the recipe are built by factory
functions taking the recipe, so its Request/Response types appear in OpenAPI."""
