"""`python -m ivig_cds`: the same command line as `ivig-cds`."""

from ivig_cds.cli import main

main()
