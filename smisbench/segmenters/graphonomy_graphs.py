"""The fixed graphs Graphonomy's CIHP model needs at inference (they are not in its state_dict).

Node adjacency of the 7 PASCAL-Person-Part classes and the 20 CIHP classes (which body parts
touch), and the 7x20 semantic similarity between the two label sets that drives the
PASCAL -> CIHP graph transfer. Values are those of Graphonomy's ``networks/graph.py``.
"""

from __future__ import annotations

import numpy as np

# class -> neighbouring classes; a class listed as its own neighbour gets a self-loop
PASCAL_NEIGHBOURS: dict[int, tuple[int, ...]] = {
    0: (0,), 1: (1, 2), 2: (1, 2, 3, 5), 3: (2, 3, 4), 4: (3, 4), 5: (2, 5, 6), 6: (5, 6),
}

CIHP_NEIGHBOURS: dict[int, tuple[int, ...]] = {
    0: (), 1: (2, 13), 2: (1, 13), 3: (14, 15), 4: (13,), 5: (6, 7, 9, 10, 11, 12, 14, 15),
    6: (5, 7, 10, 11, 14, 15, 16, 17), 7: (5, 6, 9, 10, 11, 12, 14, 15), 8: (16, 17, 18, 19),
    9: (5, 7, 10, 16, 17, 18, 19), 10: (5, 6, 7, 9, 11, 12, 13, 14, 15, 16, 17), 11: (5, 6, 7, 10, 13),
    12: (5, 7, 10, 16, 17), 13: (1, 2, 4, 10, 11), 14: (3, 5, 6, 7, 10), 15: (3, 5, 6, 7, 10),
    16: (6, 8, 9, 10, 12, 18), 17: (6, 8, 9, 10, 12, 19), 18: (8, 9, 16), 19: (8, 9, 17),
}

# rows: 7 PASCAL classes, columns: 20 CIHP classes
PASCAL_CIHP_SIMILARITY: tuple[tuple[float, ...], ...] = (
    (
        1.0, 0.35333052, 0.32727194, 0.17418084, 0.18757584,
        0.40608522, 0.37503981, 0.35448462, 0.22598555, 0.23893579,
        0.33064262, 0.28923404, 0.27986573, 0.4211553, 0.36915778,
        0.41377746, 0.32485771, 0.37248222, 0.36865639, 0.41500332,
    ),
    (
        0.39615879, 0.46201529, 0.52321467, 0.30826114, 0.25669527,
        0.54747773, 0.3670523, 0.3901983, 0.27519473, 0.3433325,
        0.52728509, 0.32771333, 0.34819325, 0.63882953, 0.68042925,
        0.69368576, 0.63395791, 0.65344337, 0.59538781, 0.6071375,
    ),
    (
        0.16373166, 0.21663339, 0.3053872, 0.28377612, 0.1372435,
        0.4448808, 0.29479995, 0.31092595, 0.22703953, 0.33983576,
        0.75778818, 0.2619818, 0.37069392, 0.35184867, 0.49877512,
        0.49979437, 0.51853277, 0.52517541, 0.32517741, 0.32377309,
    ),
    (
        0.32687232, 0.38482461, 0.37693463, 0.41610834, 0.20415749,
        0.76749079, 0.35139853, 0.3787411, 0.28411737, 0.35155421,
        0.58792618, 0.31141718, 0.40585111, 0.51189218, 0.82042737,
        0.8342413, 0.70732188, 0.72752501, 0.60327325, 0.61431337,
    ),
    (
        0.34069369, 0.34817292, 0.37525998, 0.36497069, 0.17841617,
        0.69746208, 0.31731463, 0.34628951, 0.25167277, 0.32072379,
        0.56711286, 0.24894776, 0.37000453, 0.52600859, 0.82483993,
        0.84966274, 0.7033991, 0.73449378, 0.56649608, 0.58888791,
    ),
    (
        0.28477487, 0.35139564, 0.42742352, 0.41664321, 0.20004676,
        0.78566833, 0.42237487, 0.41048549, 0.37933812, 0.46542516,
        0.62444759, 0.3274493, 0.49466009, 0.49314658, 0.71244233,
        0.71497003, 0.8234787, 0.83566589, 0.62597135, 0.62626812,
    ),
    (
        0.3011378, 0.31775977, 0.42922647, 0.36896257, 0.17597556,
        0.72214655, 0.39162804, 0.38137872, 0.34980296, 0.43818419,
        0.60879174, 0.26762545, 0.46271161, 0.51150476, 0.72318109,
        0.73678399, 0.82620388, 0.84942166, 0.5943811, 0.60607602,
    ),
)


def adjacency(neighbours: dict[int, tuple[int, ...]]) -> np.ndarray:
    """Undirected 0/1 adjacency of a neighbour list (a self-listed class gets 1 on the diagonal)."""
    n = len(neighbours)
    a = np.zeros((n, n), dtype=np.float64)
    for i, others in neighbours.items():
        for j in others:
            a[i, j] = a[j, i] = 1.0
    return a


def normalized_adjacency(neighbours: dict[int, tuple[int, ...]]) -> np.ndarray:
    """D^-1/2 (A + I) D^-1/2, the GCN propagation matrix Graphonomy feeds its graph convolutions."""
    a = adjacency(neighbours) + np.eye(len(neighbours))
    d = a.sum(1) ** -0.5
    return d[:, None] * a * d[None, :]


def graphonomy_adjacencies() -> dict[str, np.ndarray]:
    """The three matrices of CIHP inference: target (20x20), source (7x7), transfer (20x7)."""
    return {
        "cihp": normalized_adjacency(CIHP_NEIGHBOURS).astype(np.float32),
        "pascal": normalized_adjacency(PASCAL_NEIGHBOURS).astype(np.float32),
        "cihp_from_pascal": np.asarray(PASCAL_CIHP_SIMILARITY, dtype=np.float32).T.copy(),
    }
