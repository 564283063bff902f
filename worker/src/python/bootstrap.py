"""Python half of the rwsgi worker: loading applications and small helpers.

Kept in Python because this is where Python semantics live (import
machinery, tracebacks); the Rust side calls these functions by name.
"""

import importlib
import importlib.machinery
import importlib.util
import io
import os
import site
import sys
import traceback

try:
    # CPython's own MD5: hashlib would load OpenSSL's libcrypto, whose
    # initialisation alone adds about 3 MiB to every process's memory.
    from _md5 import md5 as _md5
except ImportError:
    from hashlib import md5 as _md5


def prepare_path(working_directory, python_paths, script_directory):
    """sys.path: working directory first, then --python-path entries (with
    their .pth files processed), then the script's own directory."""
    front = [working_directory] + list(python_paths)
    if script_directory and script_directory not in front:
        front.append(script_directory)
    rest = [p for p in sys.path if p not in front and p != ""]
    sys.path[:] = front + rest
    for path in python_paths:
        site.addsitedir(path)


class _LogRaw(io.RawIOBase):
    """The bytes side of sys.stdout/sys.stderr: every write goes to a Rust
    sink that logs complete lines with the worker's id. fileno() is the
    inherited descriptor, so faulthandler and subprocess still work."""

    def __init__(self, sink, fd, name):
        super().__init__()
        self._sink = sink
        self._fd = fd
        self.name = name

    def writable(self):
        return True

    def write(self, b):
        data = bytes(b)
        self._sink.write(data)
        return len(data)

    def flush(self):
        self._sink.flush()

    def fileno(self):
        return self._fd

    def isatty(self):
        return False


def install_output(stdout_sink, stderr_sink):
    """print() and logging reach the server log, line by line, tagged with
    the worker: sys.stdout and sys.stderr become line-writing text streams."""

    def stream(sink, fd, name):
        text = io.TextIOWrapper(
            _LogRaw(sink, fd, "<%s>" % name),
            encoding="utf-8",
            errors="backslashreplace",
            line_buffering=True,
            write_through=True,
        )
        text.mode = "w"
        return text

    sys.stdout = stream(stdout_sink, 1, "stdout")
    sys.stderr = stream(stderr_sink, 2, "stderr")


def flush_output():
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass


def prepare_template():
    """Imports what loading any application will import here, so that
    workers forked from the template share it instead of importing it each."""
    import atexit  # noqa: F401
    import signal  # noqa: F401


def restrict_signals(warn):
    """signal.signal() from the application is ignored with a warning, like
    mod_wsgi: the worker's signals belong to rwsgi, and a Python handler
    would never run anyway (the main thread stays in Rust)."""
    import signal

    def _signal(signalnum, handler):
        try:
            name = signal.Signals(signalnum).name
        except (ValueError, TypeError):
            name = str(signalnum)
        warn(
            "signal.signal(%s, %r) by the application ignored: "
            "rwsgi's worker handles its signals itself" % (name, handler)
        )
        return signal.getsignal(signalnum)

    _signal.__doc__ = signal.signal.__doc__
    signal.signal = _signal


def module_files(extra):
    """The source files of every loaded module (and `extra`), for
    --reload-on-changes."""
    files = set(extra)
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if not isinstance(path, str) or not path:
            continue
        if path.endswith((".pyc", ".pyo")):
            path = path[:-1]
        files.add(path)
    return sorted(files)


def describe_interpreter():
    venv = sys.prefix if sys.prefix != sys.base_prefix else None
    return "Python %s at %s (prefix %s%s)" % (
        sys.version.split()[0],
        sys.executable,
        sys.prefix,
        ", virtualenv" if venv else "",
    )


class _ScriptLoader(importlib.machinery.SourceFileLoader):
    """Compiles the script from its source at every load, as mod_wsgi does. A
    cached bytecode file is checked only against the source's size and mtime
    in whole seconds, so a script rewritten within a second at the same size
    would be reloaded from the stale bytecode."""

    def get_code(self, fullname):
        return self.source_to_code(self.get_data(self.path), self.path)


def apply_python_options(warnoptions, switch_interval):
    """--python-warnings (as python -W) and --switch-interval."""
    import warnings
    for option in warnoptions:
        sys.warnoptions.append(option)
        try:
            warnings._setoption(option)
        except warnings._OptionError as e:
            print("rwsgi: --python-warnings %r: %s" % (option, e), file=sys.stderr)
    if switch_interval is not None:
        sys.setswitchinterval(switch_interval)


_DEFAULT_PAGE = b"""<!DOCTYPE html>
<html><head><title>rwsgi</title></head>
<body><h1>rwsgi is running</h1>
<p>No WSGI application was given. Start the server with one:
<code>rwsgi start-server wsgi.py</code></p></body></html>
"""


def default_application(environ, start_response):
    """What mod_wsgi-express serves when no entry point is given."""
    start_response("200 OK", [("Content-Type", "text/html; charset=utf-8"),
                              ("Content-Length", str(len(_DEFAULT_PAGE)))])
    return [_DEFAULT_PAGE]


def load_script(path, callable_name):
    """Runs a WSGI script file as a uniquely named module, like mod_wsgi."""
    if not path:
        return default_application
    module = _run_script("_rwsgi_" + _md5(path.encode("utf-8")).hexdigest(), path)
    return _find_callable(module, callable_name, "script %s" % path)


def _run_script(name, path):
    """Runs a script file as module `name` (compiled from its source, as
    mod_wsgi does); a script that fails leaves no half-made module behind."""
    loader = _ScriptLoader(name, path)
    spec = importlib.util.spec_from_loader(name, loader, origin=path)
    module = importlib.util.module_from_spec(spec)
    module.__file__ = path
    sys.modules[name] = module
    try:
        loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def load_hook(path, option, function):
    """A function of an auth or host-access script (mod_wsgi's
    WSGIAuthUserScript, WSGIAuthGroupScript, WSGIAccessScript), the script
    run once as a uniquely named module even when two options name it."""
    name = "_rwsgi_hook_" + _md5(path.encode("utf-8")).hexdigest()
    module = sys.modules.get(name)
    if module is None:
        module = _run_script(name, path)
    hook = getattr(module, function, None)
    if not callable(hook):
        raise LookupError("%s has no function %s() (see %s)" % (path, function, option))
    return hook


def load_module(name, callable_name):
    """Imports a dotted module path; "package.module:callable" is accepted."""
    if ":" in name:
        name, callable_name = name.split(":", 1)
    module = importlib.import_module(name)
    return _find_callable(module, callable_name, "module %s" % name)


def load_paste(path):
    try:
        from paste.deploy import loadapp
    except ImportError:
        raise ImportError(
            "--application-type paste needs PasteDeploy: pip install PasteDeploy"
        ) from None
    _configure_paste_logging(path)
    return loadapp("config:" + path)


def _configure_paste_logging(path):
    """A Paste .ini with a [loggers] section configures logging, as pserve
    and mod_wsgi-express do; its handlers' sys.stderr is the server log."""
    import configparser

    parser = configparser.RawConfigParser(strict=False)
    try:
        parser.read(path)
    except configparser.Error:
        return
    if not parser.has_section("loggers"):
        return
    import logging.config

    logging.config.fileConfig(
        path,
        {"__file__": path, "here": os.path.dirname(path)},
        disable_existing_loggers=False,
    )


def _find_callable(module, callable_name, where):
    try:
        app = getattr(module, callable_name)
    except AttributeError:
        raise LookupError(
            "%s has no WSGI callable named %r (see --callable-object)"
            % (where, callable_name)
        ) from None
    if not callable(app):
        raise TypeError("%s: %r is not callable" % (where, callable_name))
    return app


def format_exception(exc, tb):
    return "".join(traceback.format_exception(type(exc), exc, tb or exc.__traceback__))


def run_exit_handlers():
    import atexit

    try:
        atexit._run_exitfuncs()
    finally:
        flush_output()


class FileWrapper:
    """wsgi.file_wrapper: iterates a file-like object in blocks. The server
    sends real files with sendfile() instead of iterating."""

    def __init__(self, filelike, blksize=8192):
        # read(0) would end the body at once and read(-1) read it whole:
        # a block size is a positive int, or the application's error now.
        if not isinstance(blksize, int) or isinstance(blksize, bool):
            raise TypeError("wsgi.file_wrapper: blksize must be an int, not %s" % type(blksize).__name__)
        if blksize <= 0:
            raise ValueError("wsgi.file_wrapper: blksize must be positive, not %d" % blksize)
        self.filelike = filelike
        self.blksize = blksize
        if hasattr(filelike, "close"):
            self.close = filelike.close

    def __iter__(self):
        return self

    def __next__(self):
        data = self.filelike.read(self.blksize)
        if data:
            return data
        raise StopIteration


class RequestTimeout(BaseException):
    """Raised in a request's thread when it overruns --request-timeout and
    --interrupt-timeout is set (mod_wsgi 6's mod_wsgi.RequestTimeout). It
    derives from BaseException so that `except Exception:` does not swallow
    it; code may catch it to clean up but should re-raise, so that the
    server can answer 504 and the thread can serve on."""


RequestTimeout.__module__ = "mod_wsgi"


class _ModWsgiShim:
    """Finds and loads `mod_wsgi` as rwsgi's stand-in for mod_wsgi's embedded
    module, carrying RequestTimeout. Only an application that imports
    `mod_wsgi` gets it. When a `mod_wsgi` package is installed
    (mod_wsgi-express's), the stand-in keeps that package's path, so its
    subpackages (mod_wsgi.server ...) still import."""

    @staticmethod
    def find_spec(name, path=None, target=None):
        if name != "mod_wsgi":
            return None
        real = importlib.machinery.PathFinder.find_spec(name, path)
        locations = real.submodule_search_locations if real is not None else None
        spec = importlib.machinery.ModuleSpec(name, _ModWsgiShim, is_package=locations is not None)
        if locations is not None:
            spec.submodule_search_locations = list(locations)
        return spec

    @staticmethod
    def create_module(spec):
        import types

        module = types.ModuleType(spec.name, "rwsgi's stand-in for mod_wsgi's embedded module.")
        module.RequestTimeout = RequestTimeout
        module.server_metrics = server_metrics
        module.process_metrics = process_metrics
        module.start_recording_metrics = start_recording_metrics
        return module

    @staticmethod
    def exec_module(module):
        pass


# What answers server_metrics(): set by the worker with --server-metrics.
_server_metrics = None


def server_metrics():
    """mod_wsgi.server_metrics(): the server's processes and their threads
    as a dict (mod_wsgi's keys), or None without --server-metrics."""
    return None if _server_metrics is None else _server_metrics()


def install_server_metrics(source):
    global _server_metrics
    _server_metrics = source


# What answers process_metrics() (not set with --telemetry-service), and
# whether the application asked for it (start_recording_metrics()).
_process_metrics = None
_recording_metrics = False


def start_recording_metrics():
    """mod_wsgi.start_recording_metrics(): process_metrics() answers from now on."""
    global _recording_metrics
    _recording_metrics = True


def process_metrics():
    """mod_wsgi.process_metrics(): this worker's figures as a dict (mod_wsgi's
    keys), or None before start_recording_metrics() and with
    --telemetry-service."""
    if _process_metrics is None or not _recording_metrics:
        return None
    return _process_metrics()


def install_process_metrics(source):
    global _process_metrics
    _process_metrics = source


def install_modules():
    """`rwsgi` (always) and `mod_wsgi` (when imported) as modules carrying
    RequestTimeout: one class under both names."""
    import types

    rwsgi = types.ModuleType("rwsgi", "The rwsgi server's Python API.")
    rwsgi.RequestTimeout = RequestTimeout
    rwsgi.server_metrics = server_metrics
    rwsgi.process_metrics = process_metrics
    rwsgi.start_recording_metrics = start_recording_metrics
    sys.modules.setdefault("rwsgi", rwsgi)
    if _ModWsgiShim not in sys.meta_path:
        sys.meta_path.insert(0, _ModWsgiShim)


def thread_stack(ident):
    """The Python stack of thread `ident`, innermost call last ('' if it has none)."""
    frame = sys._current_frames().get(ident)
    if frame is None:
        return ""
    return "".join(traceback.format_stack(frame))
