"""Binary SegNet with the changes that raised validation-fold scores: an improvement on the
paper's config, not a reproduction of it.

segnet_binary (every variant works as there) with default.apply_improvements, each change chosen
on the validation sets of five-fold cross-validation of exp 4 at the :cpu scale (128x128,
40 epochs, 4x narrower; RESULTS.md), never on the test set.
(Those folds are kfold_split's before 2026-12-05, whose folds 1 to 4 all validated on the same
10 slices: each "five folds" below rests on two validation sets. RESULTS.md, *The validation
folds*, has what was re-measured on the disjoint folds since.)
  - train.loss = 'weighted_ce+dice'. Mean over folds of the last validation scores: global
    accuracy 0.924 -> 0.956, infected Dice 0.530 -> 0.627. Disjoint folds: 0.611 -> 0.661
    at the argmax, every fold up; but with flip TTA and each loss's own threshold (0.85 for
    both) the weighted cross-entropy alone is higher on every fold (0.724 against 0.709), so
    the threshold makes the Dice term redundant there. Kept: at this config's 256x256 and
    160 epochs, on the paper's validation slices, three seeds do not repeat it (pooled over
    the seeds 0.802 at the weighted CE's best threshold, 0.85, against 0.806 at 0.8 for
    CE + Dice; their ensembles 0.815 against 0.821; RESULTS.md, *The validation folds*).
  - eval.tta_flip = True. The five fold models of the paper's loss: global accuracy
    0.924 -> 0.930, infected Dice 0.530 -> 0.548 (every fold up). Disjoint folds, at the
    threshold below: 0.708 -> 0.717, every fold up.
  - eval.foreground_threshold = 0.8: a pixel is infected where its flip-averaged softmax
    exceeds 0.8 rather than 0.5. The median-frequency weights make the network over-segment
    (256x256 seeds: sensitivity 0.90-0.94, specificity 0.96-0.97); a higher threshold trades
    some of that sensitivity for precision. Chosen on the validation slices of the five folds
    of this config (`python -m covseg_jax.threshold` on them, nineteenth session, RESULTS.md):
    pooled infected Dice 0.637 -> 0.683, up on 4 of 5 folds; each fold at the threshold chosen
    on the other four alone 0.6815 -> 0.7250, 0.6678 -> 0.6766, 0.5191 -> 0.6221,
    0.6753 -> 0.5696 and 0.6467 -> 0.6890 (mean +0.018: the fourth fold's model does not
    over-segment, and loses). Disjoint folds: pooled 0.667 -> 0.715 (0.718 at 0.85, the best);
    cross-fitted +0.036, up on 4 of 5.
  - A seed ensemble, a recipe on top of this config (a config describes one run): train it with
    seeds 0, 1 and 2 and evaluate them as one model with covseg_jax.ensemble. With CE + Dice:
    global accuracy 0.956 -> 0.966, infected Dice 0.627 -> 0.688 (the three seeds alone
    0.627-0.652; the ensemble above their mean on every fold). Disjoint folds, with flip TTA
    and the threshold: 0.706 (the seeds' mean) -> 0.721, up on every fold.
The network stays SegNet: with these changes and the paper's 160 epochs for both, the same folds
give SegNet infected Dice 0.711 (global accuracy 0.972) and the U-Net of unet_binary 0.677
(0.965), SegNet higher on every fold.
Tried on the disjoint folds, three seeds each, and not adopted (RESULTS.md, R38; this config
0.718 / 0.713 / 0.718): data.lesion_class = True (trained on the multi task's four classes,
infected the three lesion classes merged), -0.046 over the seeds, down on 14 of 15 fold-seed
pairs; train.lr_schedule = 'cosine', -0.0035, up on 7 of 15; train.gamma_range = 0.5, -0.0109,
up on 5 of 15; (R39) train.ema_epochs = 4, -0.0024, up on 7 of 15; and (R40) the paper's other
experiments: exp 7 and 9 (learning rate 3e-3, batch 4 and 12) -0.0165 and -0.0110 over three
seeds, up on 8 and 9 of 15; exp 5, 6 and 8 -0.031, -0.012 and -0.073 with seed 0; the Dice loss
alone (train.loss = 'dice'), seed 0: -0.047 at 0.8, -0.004 at each fold's cross-fitted threshold;
and (R41) train.l2 = 0 (the paper's 1e-4), -0.0075 over three seeds, up on 6 of 15; train.l2 =
1e-3, -0.0098 with seed 0; and (R42) train.elastic = 0.02 (random elastic deformation), -0.0050
over three seeds, up on 8 of 15; train.label_smoothing = 0.1, -0.0074, up on 7 of 15 (seed 0 at
each fold's own threshold -0.0061).

  python -m covseg_jax.main --config=configs/segnet_binary_improved.py --workdir=runs/segnet_binary_improved
  for seed in 1 2; do
    python -m covseg_jax.main --config=configs/segnet_binary_improved.py --workdir=runs/segnet_binary_improved_seed$seed --config.seed=$seed
  done
  python -m covseg_jax.ensemble --members=runs/segnet_binary_improved,runs/segnet_binary_improved_seed1,runs/segnet_binary_improved_seed2 --out=runs/segnet_binary_improved_ensemble
"""
from configs import default, segnet_binary


def get_config(arg=None):
  config = default.apply_improvements(segnet_binary.get_config(arg))
  config.eval.foreground_threshold = 0.8
  return config
