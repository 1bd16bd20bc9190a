"""``python -m hpa_ens.stack``: the ``hpa-ens stack`` command (per-class LightGBM stacking).

The command lives in :mod:`hpa_ens.commands.stack`; ``Stacker`` and its reports in :mod:`hpa_ens.ensemble`.
"""

if __name__ == "__main__":  # python -m hpa_ens.stack: the command lives in hpa_ens.commands.stack
    from hpa_ens.commands import launch

    launch("stack", __spec__.name)
