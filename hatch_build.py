"""Build hook: compile src/ivig_cds/_durable_compat.c into the wheel (that file says why).

hatchling packs the pure-Python package; setuptools' `build_ext` compiles the one C file with
the interpreter's own compiler flags, and the wheel becomes platform-specific. An editable
install imports the package from src/, so there the module is built in place beside its source.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface
from setuptools import Distribution, Extension
from setuptools.command.build_ext import build_ext

MODULE = "ivig_cds._durable_compat"
SOURCE = "src/ivig_cds/_durable_compat.c"


class DurableCompatBuildHook(BuildHookInterface):  # type: ignore[type-arg]
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel":
            return
        self._tmp = tempfile.mkdtemp(prefix="ivig-cds-build-")
        source = str(Path(self.root, SOURCE))
        command = build_ext(Distribution({"ext_modules": [Extension(MODULE, [source])]}))
        command.build_lib = command.build_temp = self._tmp
        command.ensure_finalized()
        command.run()
        built = Path(command.get_ext_fullpath(MODULE))
        if version == "editable":
            shutil.copy2(built, Path(self.root, "src", "ivig_cds", built.name))
        else:
            build_data["force_include"][str(built)] = f"ivig_cds/{built.name}"
            build_data["pure_python"] = False
            build_data["infer_tag"] = True

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        if self.target_name == "wheel":
            shutil.rmtree(self._tmp, ignore_errors=True)
