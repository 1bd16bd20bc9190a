"""``python -m hpa_ens.blend``: the ``hpa-ens blend`` command (blend prediction sets, or vote submissions).

The command lives in :mod:`hpa_ens.commands.blend`; the blends, ``Blender`` and the vote in
:mod:`hpa_ens.ensemble`.
"""

if __name__ == "__main__":  # python -m hpa_ens.blend: the command lives in hpa_ens.commands.blend
    from hpa_ens.commands import launch

    launch("blend", __spec__.name)
