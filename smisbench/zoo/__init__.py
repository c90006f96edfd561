"""The reference zoo: the paper's models trained on the embedded synthetic set, shipped with manifests.

``zoo.toml`` defines the entries (:mod:`smisbench.zoo.definition`), ``smisbench zoo train`` trains
them (:mod:`smisbench.zoo.train`), ``checkpoints/`` holds what ships (:mod:`smisbench.zoo.store`),
``smisbench zoo verify`` checks it (:mod:`smisbench.zoo.verify`); :mod:`smisbench.zoo.truth` and
:mod:`smisbench.zoo.ceiling` give the real-data rows every zoo table carries.
"""
