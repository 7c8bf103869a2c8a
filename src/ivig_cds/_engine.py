"""The only module that imports durable_rules, and the walls around it.

durable_rules' C extension is not safe to enter from two threads at once (measured: SIGSEGV and
"double free" with 8 threads), keeps at most 1,024 live sessions per ruleset, and puts the whole
fact into its error messages. So every call goes through one process-wide lock, and every failure
becomes an `EngineError` that carries no fact.

We drive the C module directly rather than `durable.engine.Host`, which starts timer threads
that run callbacks off the caller's thread. Each ruleset keeps one session for ever: a fact is
asserted, its actions drained, then retracted, leaving the session empty for the next call.
`benchmarks/bench_driving.py` measured the choices (median per match, shipped conclusions):
Host API 19.7 µs, C module with a session per call 12.2 µs, one session with retraction 6.9 µs,
`assert_facts` batches 17-26 µs; retraction also left RSS flat over 1,000,000 facts.

durable is imported on first use, not with the package, so that `import ivig_cds`, `--version`
and the reference engine work even where durable cannot load, and so that failure is one clear
`EngineUnavailableError` saying what to do, rather than an ImportError traceback.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import itertools
import json
import os
import re
import sys
import threading
from collections.abc import Mapping
from types import ModuleType
from typing import Any

from ivig_cds._errors import EngineError, EngineUnavailableError

_LOCK = threading.Lock()
_NAMES = itertools.count()
_SID = "1"  # one session per ruleset, left empty after every call (under the lock)


def _reset_lock_in_child() -> None:
    # A fork taken while another thread held the lock would leave the child's copy locked forever.
    global _LOCK  # noqa: PLW0603 (the lock must be replaced, not mutated, in a forked child)
    _LOCK = threading.Lock()


os.register_at_fork(after_in_child=_reset_lock_in_child)


DURABLE = "durable-rules"
DURABLE_REQUIREMENT = "durable-rules==2.0.28"
# gcc 14 refuses durable-rules' call of the function Python 3.13 removed; this define renames it.
GCC14_CPPFLAGS = "CPPFLAGS=-DPyEval_CallObject=PyObject_CallObject"
_loaded: ModuleType | None = None
_LOAD_LOCK = threading.Lock()


def load_durable() -> ModuleType:
    """durable's C module, loaded once.

    durable-rules 2.0.28 calls `PyEval_CallObject`, which Python 3.13 removed. On 3.13 and
    later our own `_durable_compat` extension (src/ivig_cds/_durable_compat.c) defines it, and
    is loaded with RTLD_GLOBAL first so that the dynamic loader resolves durable's reference
    to it.

    Raises:
        EngineUnavailableError: durable cannot be loaded; the message says what to do.
    """
    global _loaded  # noqa: PLW0603 (one module object per process, loaded on first use)
    with _LOAD_LOCK:
        if _loaded is None:
            try:
                if sys.version_info >= (3, 13):
                    _load_compat()
                import durable_rules_engine  # noqa: PLC0415 (loaded on first use, see above)
            except ImportError as exc:
                raise EngineUnavailableError(_unavailable(exc)) from None
            _loaded = durable_rules_engine
        return _loaded


def _load_compat() -> None:
    flags = sys.getdlopenflags()
    sys.setdlopenflags(flags | os.RTLD_GLOBAL)
    try:
        import ivig_cds._durable_compat  # noqa: F401, PLC0415 (its symbol, global, is the point)
    finally:
        sys.setdlopenflags(flags)


def durable_version() -> str | None:
    """The installed durable-rules version, or None: read from metadata, nothing is loaded."""
    try:
        return importlib.metadata.version(DURABLE)
    except importlib.metadata.PackageNotFoundError:
        return None


def python_description() -> str:
    """`Python 3.13.0 (CPython, /usr/bin/python3)`: which interpreter, for versions and errors."""
    version = ".".join(str(part) for part in sys.version_info[:3])
    implementation = {"cpython": "CPython", "pypy": "PyPy"}.get(sys.implementation.name)
    return f"Python {version} ({implementation or sys.implementation.name}, {sys.executable})"


def _unavailable(exc: ImportError) -> str:
    installed = durable_version()
    where = f"on {python_description()}"
    if exc.name == "ivig_cds._durable_compat":
        return (
            f"the rule engine cannot be loaded {where}: this installation of ivig-cds lacks its "
            "compiled module ivig_cds._durable_compat, which durable-rules needs on Python 3.13 "
            "and later. Reinstall ivig-cds from source with this Python "
            "(pip install --force-reinstall --no-deps --no-binary ivig-cds ivig-cds, or "
            "pip install -e . in a checkout); gcc and the Python headers are needed."
        )
    if installed is None:
        return (
            f"the rule engine cannot be loaded {where}: {DURABLE} is not installed. Install it "
            f"with pip install '{DURABLE_REQUIREMENT}' (it compiles C: gcc and the Python "
            f"headers are needed, e.g. apt-get install gcc python3-dev); with gcc 14 or later "
            f"set {GCC14_CPPFLAGS} for that command."
        )
    return (
        f"the rule engine cannot be loaded {where}: {DURABLE} {installed} does not load "
        f"({exc}). ivig-cds runs it on Python 3.11 to 3.13; use one of those, "
        f"or rebuild it for this one: pip install --force-reinstall --no-cache-dir "
        f"'{DURABLE_REQUIREMENT}' (with gcc 14 or later, with {GCC14_CPPFLAGS})."
    )


def _code(exc: BaseException) -> str:
    """durable's messages embed the fact; keep only its numeric error code."""
    found = re.search(r"error code:?\s*(\d+)", str(exc))
    return f" (durable_rules error code {found.group(1)})" if found else ""


class DurableMatcher:
    """One compiled durable ruleset; `match` returns the names of the rules a fact fires."""

    def __init__(self, definition: Mapping[str, Any]) -> None:
        self._name = f"ivig_cds_{next(_NAMES)}"
        self._dre = _dre = load_durable()  # EngineUnavailableError, with what to do about it
        try:
            with _LOCK:
                self._handle = _dre.create_ruleset(self._name, json.dumps(definition))
        except Exception as exc:
            raise EngineError(f"durable_rules rejected the compiled ruleset{_code(exc)}") from None

    def match(self, fact: Mapping[str, Any]) -> frozenset[str]:
        message = json.dumps({**fact, "sid": _SID})
        fired: set[str] = set()
        _dre = self._dre
        with _LOCK:
            try:
                code, state = _dre.assert_fact(self._handle, message)
                if code not in (0, 1):  # 0: actions pending; 1: matched nothing; 2: seen before
                    raise _UnexpectedCodeError(f"error code: {code}")
                action = _dre.start_action_for_state(self._handle, state) if code == 0 else None
                result = action[1] if action else None
                while result:
                    fired.add(_rule_name(result))
                    result = _dre.complete_and_start_action(self._handle, state)
                retracted, _ = _dre.retract_fact(self._handle, message)
                if retracted != 0:
                    raise _UnexpectedCodeError(f"error code: {retracted}")
            except Exception as exc:
                # Start the next call from a fresh session, whatever this one was left holding.
                with contextlib.suppress(Exception):
                    _dre.delete_state(self._handle, _SID)
                raise EngineError(f"durable_rules failed while matching{_code(exc)}") from None
        return frozenset(fired)


class _UnexpectedCodeError(Exception):
    """durable returned a code it documents as a failure instead of raising."""


def _rule_name(result: str) -> str:
    # An action is '{"<rule name>":{"m":{...fact...}}}'; rule ids contain no quotes.
    return result[2 : result.index('"', 2)]
