"""Test stacks only: the volume backend cinder.sh gives each cinder-volume
backend (fake1, fake2). Everything else is real Cinder (API, scheduler,
volume manager, database, RPC); only the storage is fake, as Nova's fake
virt driver is for nova.sh. A volume is a file of one line in the backend's
directory, so the driver is restart-safe: what it holds is on disk.

Its `migrate_volume` is a driver-assisted migration between backends of
this driver (as a storage array moves a volume between its own pools): the
file moves to the destination backend's directory after
`sextant_migrate_seconds`, so that a caller polling `migration_status` sees
`migrating` first. To a backend of another driver it answers "not moved",
and Cinder falls back to its generic host-copy migration. A retype that
stays on the volume's backend is done in place."""

import os
import time

from oslo_config import cfg
from oslo_log import log as logging

from cinder import interface
from cinder.volume import configuration
from cinder.volume import driver

LOG = logging.getLogger(__name__)

OPTS = [
    cfg.StrOpt("sextant_volumes_dir",
               help="Where the fake backends keep one file per volume."),
    cfg.FloatOpt("sextant_migrate_seconds", default=2.0,
                 help="How long a driver-assisted migration takes."),
    cfg.IntOpt("sextant_capacity_gb", default=100,
               help="The backend's one pool's capacity."),
]
cfg.CONF.register_opts(OPTS, group=configuration.SHARED_CONF_GROUP)

VENDOR = "Sextant test harness"


@interface.volumedriver
class SextantFakeDriver(driver.VolumeDriver):
    """One pool per backend, named after the backend."""

    VERSION = "1.0.0"
    CI_WIKI_NAME = "none"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.configuration.append_config_values(OPTS)
        self.backend_name = (
            self.configuration.safe_get("volume_backend_name") or "fake")

    def _dir(self, backend=None):
        return os.path.join(self.configuration.sextant_volumes_dir,
                            backend or self.backend_name)

    def _path(self, volume, backend=None):
        return os.path.join(self._dir(backend), volume.id)

    def do_setup(self, context):
        os.makedirs(self._dir(), exist_ok=True)

    def check_for_setup_error(self):
        if not self.configuration.sextant_volumes_dir:
            raise ValueError("sextant_volumes_dir is not set")

    def _used_gb(self):
        total = 0
        for name in os.listdir(self._dir()):
            with open(os.path.join(self._dir(), name)) as f:
                total += int(f.read().split()[0])
        return total

    def _update_volume_stats(self):
        capacity = self.configuration.sextant_capacity_gb
        used = self._used_gb()
        self._stats = {
            "volume_backend_name": self.backend_name,
            "vendor_name": VENDOR,
            "driver_version": self.VERSION,
            "storage_protocol": "fake",
            "pools": [{
                "pool_name": self.backend_name,
                "total_capacity_gb": capacity,
                "free_capacity_gb": capacity - used,
                "allocated_capacity_gb": used,
                "provisioned_capacity_gb": used,
                "reserved_percentage": 0,
                "QoS_support": False,
                "thin_provisioning_support": False,
                "thick_provisioning_support": True,
                "multiattach": False,
            }],
        }

    def get_volume_stats(self, refresh=False):
        if refresh or not self._stats:
            self._update_volume_stats()
        return self._stats

    def create_volume(self, volume):
        with open(self._path(volume), "w") as f:
            f.write("%d\n" % volume.size)
        return {}

    def delete_volume(self, volume):
        try:
            os.unlink(self._path(volume))
        except FileNotFoundError:
            pass

    def migrate_volume(self, context, volume, host):
        caps = host.get("capabilities", {})
        if caps.get("vendor_name") != VENDOR:
            return False, None
        dest = caps.get("volume_backend_name")
        LOG.info("moving volume %s from %s to %s", volume.id,
                 self.backend_name, dest)
        time.sleep(self.configuration.sextant_migrate_seconds)
        os.makedirs(self._dir(dest), exist_ok=True)
        os.replace(self._path(volume), self._path(volume, dest))
        return True, None

    def retype(self, context, volume, new_type, diff, host):
        # Any volume type fits this storage: retyped in place when Cinder's
        # scheduler keeps the volume on its backend (else Cinder migrates).
        return True, None

    def extend_volume(self, volume, new_size):
        with open(self._path(volume), "w") as f:
            f.write("%d\n" % new_size)

    def create_export(self, context, volume, connector):
        pass

    def ensure_export(self, context, volume):
        pass

    def remove_export(self, context, volume):
        pass

    def initialize_connection(self, volume, connector):
        return {"driver_volume_type": "fake", "data": {}}

    def terminate_connection(self, volume, connector, **kwargs):
        pass
