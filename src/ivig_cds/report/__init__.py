"""The HTML report: the knowledge base as a static site, and one patient's result as a page.

`write_site` writes the site (`ivig-cds report`); `patient_page` renders one self-contained page
for a result (`ivig-cds evaluate --format html`). Both draw the decision flows from the loaded
rules, so an edited knowledge base is drawn as it runs.
"""

from ivig_cds.report.patient import patient_page
from ivig_cds.report.site import write_site

__all__ = ["patient_page", "write_site"]
