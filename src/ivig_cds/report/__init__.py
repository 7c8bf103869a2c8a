"""The HTML report: the knowledge base as a static site, and one patient's result as a page.

`write_site` writes the site (`ivig-cds report`); `patient_page` renders one self-contained page
for a result (`ivig-cds evaluate --format html`). Both draw the decision flows from the loaded
rules, so an edited knowledge base is drawn as it runs. They load lazily: the command line
imports `report.cli` at start, and Jinja2 should load only when a page is written.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ivig_cds.report.patient import patient_page
    from ivig_cds.report.site import write_site

__all__ = ["patient_page", "write_site"]


def __getattr__(name: str) -> Any:
    if name == "patient_page":
        from ivig_cds.report.patient import patient_page  # noqa: PLC0415

        return patient_page
    if name == "write_site":
        from ivig_cds.report.site import write_site  # noqa: PLC0415

        return write_site
    raise AttributeError(f"module 'ivig_cds.report' has no attribute {name!r}")
