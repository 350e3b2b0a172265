"""A plugin whose import never ends (it waits for a device that never answers)."""

import time

time.sleep(3600)
