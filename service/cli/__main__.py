"""``python -m torchkiln.service.cli``: the same as the ``torchkiln`` command."""

from torchkiln.service.cli.main import app

app()
