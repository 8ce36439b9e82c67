"""Scores the predict pipeline on MedSeg slices against the reference masks.

  python -m covseg_jax.predict_score --infection_run=runs/segnet_multi_png_cpu \\
      --lung_run=runs/lung_resnet_cpu
  python -m covseg_jax.predict_score --infection_run=runs/segnet_multi_cpu --lung_masked

The slices of one part of the paper's split (default: its 18 test slices) go through
`covseg_jax.predict` as files, exactly as the command line reads them, and the masks it makes
are compared with the reference labels and lung masks at the data's full 512x512 (a training
run's own test metrics are at its training image size). Dice is pooled over the slices, as in the
paper's class-level tables.

With --lung_run the inputs are the whole slices (tr_im_png; its two rotated slices turned back
as the data loader does) and three results are printed: the lung run's lung Dice; the lesions
with the reference lung mask (the infection run alone); the lesions with the predicted lung
(fully automatic). With --lung_masked the inputs are the authors' lung-masked PNGs
(adnan_lungmasked_png), whose lung is read from the input itself.
"""
import dataclasses
import sys

import numpy as np

from covseg_jax import metrics, predict
from covseg_jax.data import medseg, preprocess, splits
from covseg_jax.errors import InputError

SPLIT_PARTS = ('train', 'val', 'test')


def read_slices(data_dir, slice_numbers, lung_masked, shape=None):
  """The slices as one `predict.Scan`, each PNG read by predict.read_scan; each must be of
  `shape` (rows, cols) when given."""
  scans = []
  for k in slice_numbers:
    name = medseg.lungmasked_png_name(k) if lung_masked else medseg.image_png_name(k)
    scan = predict.read_scan(data_dir / name)
    if shape is not None and scan.slices.shape[1:] != shape:
      raise InputError(f'{scan.path}: {scan.slices.shape[1:]} pixels, the labels have {shape}')
    if not lung_masked:
      scan.slices[0] = medseg.align_image_png(scan.slices[0], k)
    scans.append(scan)
  return dataclasses.replace(scans[0], name=f'{len(scans)} slices',
                             slices=np.concatenate([s.slices for s in scans]))


def pooled_dice(reference, predicted, num_classes):
  """Dice per class of (N, H, W) label arrays, pooled over the slices."""
  confusion = metrics.confusion_matrices(reference, predicted, num_classes=num_classes)
  return metrics.class_metrics(metrics.pooled_confusion_matrix(confusion))['dice']


def score(infection, lung, data_dir=None, part='test'):
  """{result: {class name: Dice}} of the predict pipeline on one part of the paper's split.

  `lung` is the lung `Model`, or None for the lung-masked inputs.
  """
  data_dir = medseg.find_data_dir(data_dir)
  data = medseg.load_medseg(data_dir)
  index = getattr(splits.paper_split(data_dir), part)  # 0-based: slice number - 1.
  reference_lung = data.lung[index]
  reference = preprocess.labels_for_task(data.labels[index], reference_lung, infection.task)
  scan = read_slices(data_dir, index + 1, lung is None, reference.shape[1:])
  lesion_classes = infection.class_names[1:]

  def lesion_dice(lesions):
    dice = pooled_dice(reference, lesions, len(infection.class_names))
    return dict(zip(lesion_classes, dice[1:]))

  segmentation = predict.segment_scan(scan, infection, lung)
  if lung is None:
    return {'lesions in the input\'s lung': lesion_dice(segmentation.lesions)}
  predicted_lung = (segmentation.sides > 0).astype(np.uint8)
  with_reference_lung = predict.segment_lesions(segmentation.scaled, reference_lung, infection)
  return {
      'lung': {'lung': pooled_dice(reference_lung, predicted_lung, 2)[1]},
      'lesions in the reference lung': lesion_dice(with_reference_lung),
      'lesions in the predicted lung': lesion_dice(segmentation.lesions),
  }


def build_parser():
  parser = predict.Parser(prog='python -m covseg_jax.predict_score',
                          description='Dice of the predict pipeline on MedSeg slices.')
  parser.add_argument('--infection_run', required=True, metavar='RUN',
                      help='workdir of a binary or multi-class infection run (or an ensemble)')
  parser.add_argument('--lung_run', metavar='RUN',
                      help='workdir of a lung run: whole slices in (tr_im_png)')
  parser.add_argument('--lung_masked', action='store_true',
                      help="the authors' lung-masked slices in (adnan_lungmasked_png)")
  parser.add_argument('--data_dir', metavar='DIR',
                      help='the MedSeg folder (default: found as training finds it)')
  parser.add_argument('--split', choices=SPLIT_PARTS, default='test',
                      help="the part of the paper's split to score (%(default)s)")
  parser.add_argument('--checkpoint', type=predict.checkpoint_flag,
                      help="'best', 'last' or a step (default: each run's config.eval.checkpoint)")
  return parser


def _run(args):
  if bool(args.lung_run) == args.lung_masked:
    raise InputError('pass one of --lung_run (whole slices) and --lung_masked (lung-masked '
                     'slices)')
  infection = predict.load_model(args.infection_run, 'infection', args.checkpoint)
  lung = predict.load_model(args.lung_run, 'lung', args.checkpoint) if args.lung_run else None
  results = score(infection, lung, args.data_dir, args.split)
  models = [infection] + ([lung] if lung else [])
  lines = [f'{m.role} run {m.source}: task {m.task}, step {m.step}, checkpoint {m.checkpoint}'
           for m in models]
  inputs = medseg.IMAGE_PNG_DIR if lung else medseg.LUNGMASKED_PNG_DIR
  lines.append(f"Pooled Dice on the {args.split} slices of the paper's split ({inputs}, full "
               'size):')
  width = max(map(len, results))
  for name, dice in results.items():
    values = ', '.join(f'{label} {value:.3f}' for label, value in dice.items())
    lines.append(f'  {name:<{width}}  {values}')
  return lines


def main(argv=None):
  """The command line; returns the exit status (2 for bad input, with one line on stderr)."""
  lines, status = predict.run_command(_run, build_parser().parse_args(argv))
  if lines:
    print('\n'.join(lines))
  return status

if __name__ == '__main__':
  sys.exit(main())
