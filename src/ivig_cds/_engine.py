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
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import threading
from collections.abc import Mapping
from typing import Any

import durable_rules_engine as _dre

from ivig_cds._errors import EngineError

_LOCK = threading.Lock()
_NAMES = itertools.count()
_SID = "1"  # one session per ruleset, left empty after every call (under the lock)


def _reset_lock_in_child() -> None:
    # A fork taken while another thread held the lock would leave the child's copy locked forever.
    global _LOCK  # noqa: PLW0603 (the lock must be replaced, not mutated, in a forked child)
    _LOCK = threading.Lock()


os.register_at_fork(after_in_child=_reset_lock_in_child)


def _code(exc: BaseException) -> str:
    """durable's messages embed the fact; keep only its numeric error code."""
    found = re.search(r"error code:?\s*(\d+)", str(exc))
    return f" (durable_rules error code {found.group(1)})" if found else ""


class DurableMatcher:
    """One compiled durable ruleset; `match` returns the names of the rules a fact fires."""

    def __init__(self, definition: Mapping[str, Any]) -> None:
        self._name = f"ivig_cds_{next(_NAMES)}"
        try:
            with _LOCK:
                self._handle = _dre.create_ruleset(self._name, json.dumps(definition))
        except Exception as exc:
            raise EngineError(f"durable_rules rejected the compiled ruleset{_code(exc)}") from None

    def match(self, fact: Mapping[str, Any]) -> frozenset[str]:
        message = json.dumps({**fact, "sid": _SID})
        fired: set[str] = set()
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
