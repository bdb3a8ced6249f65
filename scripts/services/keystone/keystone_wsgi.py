"""gunicorn's entry point for Keystone. Keystone's WSGI module parses
sys.argv with oslo.config, which must not see gunicorn's own arguments."""

import sys

sys.argv = sys.argv[:1]

from keystone.wsgi.api import application  # noqa: E402,F401
