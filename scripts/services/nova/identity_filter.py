"""Test stacks only: the paste filter nova.sh puts where keystonemiddleware's
`authtoken` sits in Nova's API pipeline (Nova 34 has no `noauth2`).

A request whose X-Auth-Token is the stack's token is taken as an admin's: the
X-User-Id, X-Project-Id and X-Roles headers keystonemiddleware would set from
a validated token are filled in when the caller sent none. With `keystone =
true` (nova.sh sets it when the test Keystone runs), any other token goes
through keystonemiddleware's real `authtoken` (configured by nova.conf's
[keystone_authtoken]), as in a production pipeline; without it, any other
token, or none, is refused with 401 and keystonemiddleware's error body, so
a client's bad-credential path meets a real refusal."""

import json


def filter_factory(global_conf, **local_conf):
    token = local_conf["token"]
    identity = {
        "HTTP_X_USER_ID": "admin",
        "HTTP_X_PROJECT_ID": "admin",
        "HTTP_X_ROLES": "admin,member,reader",
    }
    refusal = json.dumps({"error": {
        "code": 401, "title": "Unauthorized",
        "message": "The request you have made requires authentication."}}).encode()

    keystone = local_conf.get("keystone", "false").lower() == "true"

    def _filter(app):
        validated = None
        if keystone:
            from keystonemiddleware import auth_token
            validated = auth_token.filter_factory(dict(global_conf))(app)

        def middleware(environ, start_response):
            if validated is not None and environ.get("HTTP_X_AUTH_TOKEN") != token:
                return validated(environ, start_response)
            if environ.get("HTTP_X_AUTH_TOKEN") != token:
                start_response("401 Unauthorized", [
                    ("Content-Type", "application/json"),
                    ("Content-Length", str(len(refusal))),
                    ("WWW-Authenticate", "Keystone uri='none'")])
                return [refusal]
            for key, value in identity.items():
                environ.setdefault(key, value)
            return app(environ, start_response)
        return middleware
    return _filter
