"""``python -m hpa_ens.tune_thresholds``: per-class thresholds from a prediction set, written as thresholds.json.

The command lives in :mod:`hpa_ens.commands.thresholds` (``hpa-ens thresholds``); the rules in
:mod:`hpa_ens.thresholds`.
"""

if __name__ == "__main__":  # python -m hpa_ens.tune_thresholds: the command lives in hpa_ens.commands.thresholds
    from hpa_ens.commands import launch

    launch("thresholds", __spec__.name)
