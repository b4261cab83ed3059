"""``python -m tailor``: the same command line as the installed ``tailor`` script."""

from tailor.cli import app

app(prog_name="tailor")
