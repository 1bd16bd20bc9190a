"""The base-model commands: ``hpa-ens base-models``, ``train``, ``collect``, ``features``, ``predict``, ``distill``.

One module per subcommand, each a thin ``main(argv)`` over the library (:mod:`base_models.run_all`,
:mod:`base_models.train`, :mod:`base_models.collect`, :mod:`base_models.features`,
:mod:`base_models.predict`, :mod:`base_models.distill`), registered in :data:`hpa_ens.commands.COMMANDS`.
``python -m base_models.X`` (and ``make base-models``) reach the same ``main`` through the main guard at
the bottom of ``base_models/X.py``.

Importing a command module imports neither torch's models nor timm: the commands that build models first
set the process's hub setting (:func:`._env.offline_hub`), then import the library. Lines the library
reports through its callbacks are printed here (:mod:`._output`).
"""
