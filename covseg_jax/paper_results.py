"""The published numbers this project compares against (PROTOCOL.md), in one place.

Saood & Hatem 2021's numbers come from the authors' result files (the text copy of the paper lost
its tables) and hold for the paper's protocol: its split, 256x256 inputs, 160 epochs, its two
networks. Keys are (model name, task, experiment), experiment N = b + 3(l - 1) of GRIDS.
"""

# (learning rates, mini-batch sizes) of each network's nine experiments; configs/default.py
# holds the same grids for its expN variants (tests/test_report.py checks they agree).
GRIDS = {
    "segnet": ((1e-4, 1e-3, 3e-3), (4, 8, 12)),
    "unet": ((1e-4, 5e-4, 1e-3), (2, 8, 12)),
}

_MEAN_ACCURACY = {  # Experiments 1-9: (mean, std) over the 18 test images.
    ("segnet", "binary"): ((0.934, 0.053), (0.919, 0.062), (0.910, 0.067), (0.954, 0.029),
                           (0.941, 0.053), (0.948, 0.043), (0.942, 0.034), (0.935, 0.056),
                           (0.948, 0.047)),
    ("unet", "binary"): ((0.922, 0.057), (0.902, 0.067), (0.896, 0.069), (0.950, 0.043),
                         (0.934, 0.057), (0.901, 0.070), (0.940, 0.059), (0.927, 0.061),
                         (0.894, 0.071)),
    ("segnet", "multi"): ((0.703, 0.063), (0.657, 0.067), (0.653, 0.087), (0.894, 0.068),
                          (0.878, 0.071), (0.870, 0.072), (0.907, 0.060), (0.892, 0.069),
                          (0.881, 0.076)),
    ("unet", "multi"): ((0.860, 0.079), (0.853, 0.081), (0.845, 0.085), (0.908, 0.066),
                        (0.881, 0.072), (0.881, 0.074), (0.903, 0.068), (0.883, 0.075),
                        (0.900, 0.075)),
}

# Per-image global accuracy, (mean, std) over the 18 test images (Tables 3 and 5).
GLOBAL_ACCURACY = {(model, task, experiment + 1): value
                   for (model, task), values in _MEAN_ACCURACY.items()
                   for experiment, value in enumerate(values)}


def _classes(**rows):
  names = {"infected": "infected", "ggo": "ground-glass opacity",
           "consolidation": "consolidation", "effusion": "pleural effusion"}
  keys = ("sensitivity", "specificity", "gmean", "dice", "f2")
  return {names[name]: dict(zip(keys, values)) for name, values in rows.items()}


# Class-level metrics of each family's best run from the pooled test confusion matrix (Tables 4
# and 6), by class name. The paper's best U-Net multi-class run is experiment 4, the best by
# Table 5's accuracy.
CLASS_METRICS = {
    ("segnet", "binary", 4): _classes(infected=(0.956, 0.954, 0.955, 0.750, 0.861)),
    ("unet", "binary", 4): _classes(infected=(0.964, 0.949, 0.957, 0.734, 0.857)),
    ("segnet", "multi", 7): _classes(ggo=(0.639, 0.952, 0.780, 0.478, 0.563),
                                     consolidation=(0.672, 0.966, 0.806, 0.454, 0.564),
                                     effusion=(0.574, 0.988, 0.753, 0.122, 0.231)),
    ("unet", "multi", 4): _classes(ggo=(0.804, 0.930, 0.865, 0.484, 0.636),
                                   consolidation=(0.694, 0.983, 0.826, 0.597, 0.652),
                                   effusion=(0.684, 0.993, 0.824, 0.225, 0.377)),
}

# Gholamiankhah et al., COVID-19 test patients of their own 1200-patient data (not this data set).
LUNG_METRICS = {"lung": {"dice": 0.971, "jaccard": 0.938}}
LUNG_NOTE = ("Gholamiankhah et al. report lung DSC 0.980 ± 0.003 (normal) and 0.971 ± 0.017 "
             "(COVID-19), Jaccard 0.962 / 0.938 and |relative volume difference| 7.9 % / 12.7 % "
             "(signed: 2.4 % / 5.9 %) on their own 1200-patient data, not on this data set.")


def best_experiment(model, task):
  """The experiment whose class-level numbers the paper gives for a family; None if none."""
  return next((e for m, t, e in CLASS_METRICS if (m, t) == (model, task)), None)
