"""The 28 protein-localisation classes of the HPA 2018 task, in one place."""

from __future__ import annotations

CLASS_NAMES: tuple[str, ...] = (
    "Nucleoplasm",
    "Nuclear membrane",
    "Nucleoli",
    "Nucleoli fibrillar center",
    "Nuclear speckles",
    "Nuclear bodies",
    "Endoplasmic reticulum",
    "Golgi apparatus",
    "Peroxisomes",
    "Endosomes",
    "Lysosomes",
    "Intermediate filaments",
    "Actin filaments",
    "Focal adhesion sites",
    "Microtubules",
    "Microtubule ends",
    "Cytokinetic bridge",
    "Mitotic spindle",
    "Microtubule organizing center",
    "Centrosome",
    "Lipid droplets",
    "Plasma membrane",
    "Cell junctions",
    "Mitochondria",
    "Aggresome",
    "Cytosol",
    "Cytoplasmic bodies",
    "Rods & rings",
)
N_CLASSES: int = len(CLASS_NAMES)
#: Column names of a prediction file: "0", "1", ..., "27".
CLASS_COLUMNS: tuple[str, ...] = tuple(str(k) for k in range(N_CLASSES))
#: The four stains, in the order base models stack them.
CHANNELS: tuple[str, ...] = ("red", "green", "blue", "yellow")
