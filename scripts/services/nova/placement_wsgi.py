"""gunicorn's entry point for placement-api, test stacks only.

Placement is built as placement.wsgi does it, from placement.conf (whose
`auth_strategy = noauth2` takes the stack's static token for an admin's).
When SEXTANT_PLACEMENT_KEYSTONE is set (nova.sh sets it when the test
Keystone runs), a second pipeline of the same Placement is built with
`auth_strategy = keystone`, whose keystonemiddleware `authtoken` validates
Keystone tokens (placement.conf's [keystone_authtoken]); a request whose
X-Auth-Token is not the static token goes there, as in production."""

import os
import sys

sys.argv = sys.argv[:1]

from oslo_config import cfg  # noqa: E402
from placement import conf, db_api, deploy, policy  # noqa: E402
from placement import wsgi as placement_wsgi  # noqa: E402

config = cfg.ConfigOpts()
conf.register_opts(config)
placement_wsgi._parse_args(
    config, [], default_config_files=placement_wsgi._get_config_files())
placement_wsgi.setup_logging(config)
db_api.configure(config)
static = deploy.deploy(config)
validated = None
if os.environ.get("SEXTANT_PLACEMENT_KEYSTONE"):
    config.set_override("auth_strategy", "keystone", group="api")
    validated = deploy.deploy(config)
policy.init(config)
deploy.update_database(config)
TOKEN = os.environ.get("SEXTANT_PLACEMENT_TOKEN", "admin")


def application(environ, start_response):
    if validated is not None and environ.get("HTTP_X_AUTH_TOKEN") != TOKEN:
        return validated(environ, start_response)
    return static(environ, start_response)
