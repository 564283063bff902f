"""A stand-in for coverage.py (which the test virtualenv does not have):
it records what rwsgi's --enable-coverage does with it. Started before the
application's import, its tracer reaching the request thread, its report
written when the server stops."""

import os
import sys
import threading

started = False


class Coverage:
    def __init__(self):
        self.calls = set()
        self.main = threading.get_ident()

    def _trace(self, frame, event, arg):
        if event == "call":
            self.calls.add((frame.f_code.co_name, threading.get_ident() != self.main))
        return None

    def start(self):
        global started
        started = True
        sys.settrace(self._trace)
        threading.settrace(self._trace)

    def stop(self):
        sys.settrace(None)
        threading.settrace(None)

    def save(self):
        pass

    def html_report(self, directory):
        traced = ("application", True) in self.calls
        with open(os.path.join(directory, "index.html"), "w") as f:
            f.write("stub report: application traced in a request thread: %s\n" % traced)
