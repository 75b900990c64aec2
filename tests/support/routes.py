"""The HTTP API's routes, as the issues name them: template.yaml, the handlers and openapi.json must agree."""

WEBHOOK_ROUTES = {
    ("POST", "/webhooks/github"),
    ("POST", "/webhooks/gitlab"),
    ("POST", "/webhooks/gitea"),
}

MANAGEMENT_ROUTES = {
    ("GET", "/mirrors"),
    ("POST", "/mirrors"),
    ("GET", "/mirrors/{id}"),
    ("PUT", "/mirrors/{id}"),
    ("DELETE", "/mirrors/{id}"),
    ("POST", "/mirrors/{id}/sync"),
    ("GET", "/mirrors/{id}/runs"),
}
