"""gunicorn's entry point for nova-api (Nova 34 has no nova-api console
script). Nova's WSGI module parses sys.argv with oslo.config, which must not
see gunicorn's own arguments."""

import sys

sys.argv = sys.argv[:1]

from nova.wsgi.osapi_compute import application  # noqa: E402,F401
