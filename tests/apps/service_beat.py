"""A --service-script: a thread writes "PID TIME" to $RWSGI_TEST_BEAT
every 100 ms (a heartbeat the tests read), and the script's top level
returns, as a mod_wsgi service script's does."""

import atexit
import os
import threading
import time

_path = os.environ["RWSGI_TEST_BEAT"]


def _beat():
    while True:
        tmp = _path + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d %f\n" % (os.getpid(), time.time()))
        os.replace(tmp, _path)
        time.sleep(0.1)


threading.Thread(target=_beat, daemon=True).start()
print("beat service started as %s, uid %d" % (__name__, os.getuid()))


@atexit.register
def _bye():
    print("beat service atexit handler ran")
