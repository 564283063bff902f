"""--debug-mode's aids, as mod_wsgi-express has them (its runtime.py and
the handler script it generates): pdb post-mortem on the terminal,
coverage.py from before the import to the exit, a cProfile dump per
request, and a recorder of requests and responses.

The worker runs one request thread, which rwsgi (not `threading`) started:
what `threading` would give a new thread (a tracer such as coverage's, the
debugger's breakpoints) is given to it by the wrappers below.
"""

import atexit
import os
import pprint
import sys
import threading
import time
import traceback


def _terminal():
    """The terminal rwsgi runs on: the worker's standard input and output
    (the master gives them to it in debug mode)."""
    stdin = open(0, "r", closefd=False, errors="replace")
    stdout = open(1, "w", closefd=False, buffering=1, errors="backslashreplace")
    return stdin, stdout


class Aids:
    """What the options ask for; `wrap` wraps the application with it."""

    def __init__(self, debugger, debugger_startup, coverage_directory,
                 profiler_directory, recorder_directory):
        self.debugger = debugger
        self.debugger_startup = debugger_startup
        self.coverage_directory = coverage_directory
        self.profiler_directory = profiler_directory
        self.recorder_directory = recorder_directory
        self.coverage = None

    def start(self):
        """Before the application is imported: stdin and stdout are the
        terminal ("both stdin and stdout will be attached to the console",
        mod_wsgi-express's --debug-mode), so pdb.set_trace() and
        breakpoint() work there; coverage starts measuring."""
        # What mod_wsgi-express's handler script tells the application.
        os.environ["MOD_WSGI_DEBUG_MODE"] = "true"
        for name, on in (("DEBUGGER", self.debugger),
                         ("COVERAGE", self.coverage_directory),
                         ("PROFILER", self.profiler_directory),
                         ("RECORDER", self.recorder_directory)):
            if on:
                os.environ["MOD_WSGI_%s_ENABLED" % name] = "true"
        sys.stdin, sys.stdout = _terminal()
        if "PYTHONBREAKPOINT" not in os.environ:
            sys.breakpointhook = _breakpoint
        for directory in (self.coverage_directory, self.profiler_directory,
                          self.recorder_directory):
            if directory:
                os.makedirs(directory, exist_ok=True)
        if self.coverage_directory:
            self.coverage = _start_coverage(self.coverage_directory)

    def wrap(self, application):
        """The application with the aids around it, innermost first: the
        profiler, the debugger, the recorder (as mod_wsgi-express, which
        wraps the debugger in the recorder), then the tracer installation."""
        if self.profiler_directory:
            application = RequestProfiler(application, self.profiler_directory)
        if self.debugger:
            application = PostMortemDebugger(application, self.debugger_startup)
        if self.recorder_directory:
            application = RequestRecorder(application, self.recorder_directory)
        if self.coverage is not None:
            application = ThreadTracing(application)
        return application


def _pdb():
    import pdb

    stdin, stdout = sys.stdin, sys.stdout
    # nosigint: SIGINT is the server's (Ctrl-C stops it), not pdb's.
    return pdb.Pdb(stdin=stdin, stdout=stdout, nosigint=True)


def _breakpoint(*args, **kwargs):
    _pdb().set_trace(sys._getframe().f_back)


def _start_coverage(directory):
    try:
        import coverage
    except ImportError:
        raise ImportError(
            "--enable-coverage needs the coverage package, which this Python "
            "(%s) cannot import: install it into the application's environment "
            "(pip install coverage)" % sys.executable
        ) from None
    cov = coverage.Coverage()
    cov.start()

    def report():
        cov.stop()
        cov.save()
        cov.html_report(directory=directory)

    atexit.register(report)
    return cov


class ThreadTracing:
    """Gives the request thread the tracer `threading.settrace` set (coverage
    measures the threads `threading` starts, not the server's own)."""

    def __init__(self, application):
        self.application = application

    def __call__(self, environ, start_response):
        hook = threading.gettrace() if hasattr(threading, "gettrace") else threading._trace_hook
        if hook is not None and sys.gettrace() is None:
            sys.settrace(hook)
        return self.application(environ, start_response)


class PostMortemDebugger:
    """mod_wsgi-express's: pdb post-mortem on what the application, its
    iterable or close() raises, then the exception goes on (a 500)."""

    def __init__(self, application, startup):
        self.application = application
        self.debugger = _pdb()
        if startup:
            self.debugger.message(
                "rwsgi: the application is loaded; set breakpoints, then 'c' to serve")
            self.debugger.set_trace(sys._getframe())

    def run_post_mortem(self):
        exc = sys.exc_info()[1]
        self.debugger.message(
            "rwsgi: post-mortem debugging of %s" % "".join(
                traceback.format_exception_only(type(exc), exc)).strip())
        self.debugger.reset()
        self.debugger.interaction(None, sys.exc_info()[2])
        # 'q' at the prompt would keep later breakpoints from stopping.
        self.debugger.quitting = False

    def _follow_breakpoints(self):
        # Breakpoints set at start-up were for the main thread's tracer:
        # the request thread needs the debugger's tracer too.
        if self.debugger.breaks and sys.gettrace() is None:
            sys.settrace(self.debugger.trace_dispatch)

    def __call__(self, environ, start_response):
        self._follow_breakpoints()
        try:
            result = self.application(environ, start_response)
        except Exception:
            self.run_post_mortem()
            raise
        return _Debugged(self, result)


class _Debugged:
    def __init__(self, debugger, result):
        self.debugger = debugger
        self.result = result

    def __iter__(self):
        try:
            for item in self.result:
                yield item
        except Exception:
            self.debugger.run_post_mortem()
            raise

    def close(self):
        try:
            if hasattr(self.result, "close"):
                self.result.close()
        except Exception:
            self.debugger.run_post_mortem()
            raise


class RequestProfiler:
    """A cProfile dump per request, from the call to close(), named as
    mod_wsgi-express names its dumps: MICROSECONDS-PID.pstats."""

    def __init__(self, application, directory):
        self.application = application
        self.directory = directory

    def _dump(self, profiler):
        profiler.disable()
        name = "%d-%d.pstats" % (int(time.time() * 1000000), os.getpid())
        profiler.dump_stats(os.path.join(self.directory, name))

    def __call__(self, environ, start_response):
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
        try:
            result = self.application(environ, start_response)
        except BaseException:
            self._dump(profiler)
            raise
        return _Closing(result, lambda: self._dump(profiler))


class _Closing:
    """An iterable that runs `after` once the server closes it."""

    def __init__(self, result, after):
        self.result = result
        self.after = after

    def __iter__(self):
        return iter(self.result)

    def close(self):
        try:
            if hasattr(self.result, "close"):
                self.result.close()
        finally:
            self.after()


class RequestRecorder:
    """mod_wsgi-express's recorder: for each request, KEY.iheaders (the
    environ, pprint), KEY.icontent (the request body), KEY.oheaders (status,
    headers, exc_info), KEY.ocontent (the response body), and the tracebacks
    of what the call (KEY.oaexcept), the iteration (KEY.orexcept) and
    close() (KEY.ofexcept) raised; KEY is MICROSECONDS-PID-COUNT."""

    def __init__(self, application, savedir):
        self.application = application
        self.savedir = savedir
        self.lock = threading.Lock()
        self.pid = os.getpid()
        self.count = 0

    def __call__(self, environ, start_response):
        with self.lock:
            self.count += 1
            count = self.count

        key = "%s-%s-%s" % (int(time.time() * 1000000), self.pid, count)

        def path(ext):
            return os.path.join(self.savedir, key + ext)

        iheaders_fp = open(path(".iheaders"), "w")
        icontent_fp = open(path(".icontent"), "w+b")
        oheaders_fp = open(path(".oheaders"), "w")
        ocontent_fp = open(path(".ocontent"), "w+b")
        oaexcept_fp = open(path(".oaexcept"), "w")
        orexcept_fp = open(path(".orexcept"), "w")
        ofexcept_fp = open(path(".ofexcept"), "w")

        pprint.pprint(environ, stream=iheaders_fp)
        iheaders_fp.close()

        input = environ["wsgi.input"]
        data = input.read(8192)
        while data:
            icontent_fp.write(data)
            data = input.read(8192)
        icontent_fp.flush()
        icontent_fp.seek(0, os.SEEK_SET)
        environ["wsgi.input"] = icontent_fp

        def _start_response(status, response_headers, *args):
            pprint.pprint(((status, response_headers) + args), stream=oheaders_fp)
            oheaders_fp.flush()
            _write = start_response(status, response_headers, *args)

            def write(data):
                ocontent_fp.write(data)
                ocontent_fp.flush()
                return _write(data)

            return write

        try:
            try:
                result = self.application(environ, _start_response)
            except:  # noqa: E722 (recorded, then raised again)
                traceback.print_exception(*sys.exc_info(), file=oaexcept_fp)
                raise

            try:
                for data in result:
                    ocontent_fp.write(data)
                    ocontent_fp.flush()
                    yield data
            except:  # noqa: E722
                traceback.print_exception(*sys.exc_info(), file=orexcept_fp)
                raise
            finally:
                try:
                    if hasattr(result, "close"):
                        result.close()
                except:  # noqa: E722
                    traceback.print_exception(*sys.exc_info(), file=ofexcept_fp)
                    raise
        finally:
            icontent_fp.close()
            oheaders_fp.close()
            ocontent_fp.close()
            oaexcept_fp.close()
            orexcept_fp.close()
            ofexcept_fp.close()
