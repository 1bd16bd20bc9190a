"""``python -m hpa_ens COMMAND …``: the same dispatcher as the ``hpa-ens`` console script."""

from hpa_ens.commands import COMMANDS, console_main, main  # noqa: F401 - COMMANDS re-exported for old imports

if __name__ == "__main__":
    console_main()
