"""``python -m hpa_ens.synth``: the command lives in :mod:`hpa_ens.commands.synth`."""

if __name__ == "__main__":
    from hpa_ens.commands import launch

    launch("synth", __spec__.parent)
