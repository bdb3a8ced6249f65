"""gunicorn's entry point for cinder-api: Cinder's WSGI module parses
sys.argv with oslo.config, which must see cinder.conf (named by
SEXTANT_CINDER_CONF) and not gunicorn's own arguments."""

import os
import sys

sys.argv = [sys.argv[0], "--config-file", os.environ["SEXTANT_CINDER_CONF"]]

from cinder.wsgi.api import application  # noqa: E402,F401
