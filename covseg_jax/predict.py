"""Lung and infection masks and a severity report for CT scans, from trained runs.

  python -m covseg_jax.predict --input=scan.nii.gz --output=out \\
      --infection_run=runs/unet_multi --lung_run=runs/lung_resnet

--input is a NIfTI file (.nii or .nii.gz; a 2D slice or a 3D volume), a PNG/JPEG slice, or a
directory of them. For each scan NAME, --output receives NAME_lung and NAME_infection masks (NIfTI
on the input's voxel grid, affine and header; PNG for image inputs), NAME_severity.json and
NAME_overlay1.png, ... (the slices with the most lesion). Bad input ends with one line
`error: <file>: <problem>` on stderr and exit status 2, and writes nothing.

Conventions (they mirror how the models were trained on the MedSeg slices):

* Orientation. Slices are processed in the layout of the MedSeg arrays, axis codes LPS: axis 0
  runs from the patient's right to left, axis 1 from anterior to posterior, axis 2 is the
  axial slice axis. A NIfTI whose header has an orientation (qform_code or sform_code > 0) is
  reoriented from it, so any storage order works; a header without one (both codes 0, like the
  MedSeg files) and PNG/JPEG slices are taken to be stored like the MedSeg data already.
  --orientation=CODES overrides this with the stored axis codes (e.g. PLS for a slice in
  radiological display layout). Masks are mapped back to the stored layout before writing.
* Intensity. The training images are 8-bit and min-max scaled per slice. A scan with at least
  1 % of its voxels below -500 is taken as HU and clipped to the lung window [-1000, 400]
  first; every axial slice is then min-max scaled to 0..255, resized to the run's image size
  (bicubic as MATLAB's imresize) and normalised as the run was (zero_center with its training
  mean image, minmax, zscore or hu_window). --intensity=hu|minmax overrides the detection.
  A lung-masked input (--lung_masked) was scaled before it was masked, so it keeps its scale:
  8-bit values as they are, HU through the lung window's fixed range (`to_8bit`).
* Lungs. The lung run segments the lungs (filling each slice's enclosed holes if its
  eval.fill_holes is set, as in lung_resnet_improved); infection runs trained on lung-masked
  inputs (config.data.lung_mask) get the slices with everything outside the predicted lung
  zeroed. An input that is already lung-masked (--lung_masked) gives the lung mask itself: the
  voxels that differ from its most common value. Lesions are kept only inside the lung.
"""
import argparse
import dataclasses
import functools
import json
import os
import pathlib
import re
import shutil
import sys
import tempfile

from absl import logging
import flax
import jax
import jax.numpy as jnp
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
import nibabel as nib
from nibabel import orientations
import numpy as np
from PIL import Image

from covseg_jax import checkpoint as checkpoints
from covseg_jax import evaluate, parallel, severity
from covseg_jax.data import nifti, preprocess
from covseg_jax.errors import InputError

NIFTI_SUFFIXES = ('.nii.gz', '.nii')
IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg')
# The MedSeg arrays: rows from the patient's right to left, columns anterior to posterior.
PROCESSING_AXCODES = ('L', 'P', 'S')
RIGHT_LEFT_AXIS = 1  # Of (Z, H, W) slices in the processing frame; the right is at low rows.
# A scan with this fraction of voxels below HU_AIR is in Hounsfield units (air -1000, lung -850).
HU_AIR = -500.0
HU_FRACTION = 0.01
# Axial slices smaller than this are not CT (e.g. a coronal stack of a few slices).
MIN_IN_PLANE = 16
# A lung-masked input's background (its most common value) covers at least this fraction.
MIN_BACKGROUND_FRACTION = 0.25
INTENSITIES = ('auto', 'hu', 'minmax')
_INFECTION_TASKS = ('binary', 'multi')
# RGB of each lesion class in the overlays, by class name.
_LESION_COLOURS = {
    'ground-glass opacity': (1.0, 0.85, 0.0),
    'consolidation': (1.0, 0.2, 0.1),
    'pleural effusion': (0.2, 0.5, 1.0),
    'infected': (1.0, 0.2, 0.1),
}
_SIDE_COLOURS = {severity.RIGHT: (0.0, 0.8, 1.0), severity.LEFT: (0.3, 1.0, 0.4)}
_OVERLAY_ALPHA = 0.45


def parse_axcodes(text):
  """'LPS' -> ('L', 'P', 'S'); raises ValueError unless each axis pair occurs once."""
  codes = tuple(text.upper())
  pairs = sorted(pair for code in codes for pair in ('LR', 'AP', 'SI') if code in pair)
  if len(codes) != 3 or pairs != ['AP', 'LR', 'SI']:
    raise ValueError(f'{text!r} is not three axis codes, one of each of L/R, A/P and S/I')
  return codes


def _first_line(error):
  return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def scan_name(path):
  """(name without suffix, 'nifti' or 'image'), or (None, None) for other files."""
  lower = path.name.lower()
  for suffix in NIFTI_SUFFIXES:
    if lower.endswith(suffix) and len(lower) > len(suffix):
      return path.name[:-len(suffix)], 'nifti'
  if path.suffix.lower() in IMAGE_SUFFIXES and path.stem:
    return path.stem, 'image'
  return None, None


def find_scans(path):
  """The scan files of `path`, a scan file or a directory of them (sorted; hidden files skipped)."""
  path = pathlib.Path(path)
  expected = ', '.join(NIFTI_SUFFIXES + IMAGE_SUFFIXES)
  if not path.exists():
    raise InputError(f'{path}: no such file or directory')
  if path.is_dir():
    try:
      scans = sorted(p for p in path.iterdir()
                     if not p.name.startswith('.') and scan_name(p)[0] and p.is_file())
    except OSError as e:
      raise InputError(f'{path}: cannot list the directory ({e.strerror or e})') from None
    if not scans:
      raise InputError(f'{path}: no scans in this directory (expected {expected} files)')
    seen = {}
    for scan in scans:
      name = scan_name(scan)[0]
      if name in seen:
        raise InputError(f'{scan}: same name as {seen[name].name}; their outputs would collide')
      seen[name] = scan
    return scans
  if not path.is_file():
    raise InputError(f'{path}: not a regular file')
  if scan_name(path)[0] is None:
    raise InputError(f'{path}: not a NIfTI or image file (expected {expected})')
  return [path]


def _transform(source, target):
  """nibabel's orientation transform between two sets of axis codes."""
  return orientations.ornt_transform(orientations.axcodes2ornt(source),
                                     orientations.axcodes2ornt(target))


@dataclasses.dataclass
class Scan:
  """One input scan, checked and turned into axial slices in the processing frame."""
  path: pathlib.Path
  name: str
  kind: str  # 'nifti' or 'image'.
  slices: np.ndarray  # (Z, H, W) float32: the stored values, reoriented (PROCESSING_AXCODES).
  stored_shape: tuple
  axcodes: tuple  # Axis codes of the stored array.
  orientation_source: str  # 'header', 'assumed' (no orientation in the file) or 'flag'.
  image: object  # The nibabel image of a NIfTI input (reference for writing), else None.
  voxel_size_mm: tuple | None  # Of the stored axes; None where unknown.
  voxel_volume_ml: float | None

  def to_stored(self, volume):
    """Maps a (Z, H, W) array of the processing frame back to the stored layout."""
    stored = orientations.apply_orientation(np.moveaxis(volume, 0, 2),
                                            _transform(PROCESSING_AXCODES, self.axcodes))
    return np.ascontiguousarray(stored).reshape(self.stored_shape)

  @property
  def axial_axis(self):
    """The stored axis that holds the axial slices."""
    return int(np.nonzero(_transform(self.axcodes, PROCESSING_AXCODES)[:, 0] == 2)[0][0])

  def stored_index(self, z):
    """The stored index, along `axial_axis`, of processing slice `z`."""
    flip = _transform(self.axcodes, PROCESSING_AXCODES)[self.axial_axis, 1] < 0
    return len(self.slices) - 1 - z if flip else z


def _check_values(path, data):
  if data.dtype.kind not in 'biuf':  # RGB NIfTI (structured), complex, ...
    raise InputError(f'{path}: voxels of type {data.dtype}, expected single-channel intensities')
  low, high = data.min(), data.max()
  if low == high:
    raise InputError(f'{path}: constant image (every voxel is {low}), nothing to segment')


def _header_axcodes(image):
  """Axis codes from a NIfTI header that has an orientation, else None."""
  header = image.header
  if int(header['sform_code']) <= 0 and int(header['qform_code']) <= 0:
    return None
  ornt = orientations.io_orientation(image.affine)
  if np.isnan(ornt).any():  # A degenerate affine (zero voxel size) gives no orientation.
    return None
  return tuple(orientations.ornt2axcodes(ornt))


def _voxel_geometry(image):
  """(voxel sizes in mm of the stored axes, voxel volume in mL) or (None, None)."""
  affine = image.affine[:3, :3]
  # NIfTI's spatial unit; 'unknown' is taken as mm, the usual unit.
  scale = {'meter': 1000.0, 'micron': 1e-3}.get(image.header.get_xyzt_units()[0], 1.0)
  sizes = nib.affines.voxel_sizes(image.affine) * scale
  volume = abs(np.linalg.det(affine)) * scale ** 3 / 1000.0
  if not (np.all(np.isfinite(sizes)) and np.all(sizes > 0) and np.isfinite(volume) and volume > 0):
    return None, None
  return tuple(float(f'{s:.6g}') for s in sizes), float(volume)


def read_scan(path, orientation='auto'):
  """Reads and checks one scan (see find_scans); `orientation` is 'auto' or axis codes."""
  path = pathlib.Path(path)
  name, kind = scan_name(path)
  if kind == 'nifti':
    data, image = nifti.load_nifti(path)
    sizes, voxel_ml = _voxel_geometry(image)
  else:
    data, image, sizes, voxel_ml = nifti.load_png(path), None, None, None
  _check_values(path, data)
  if orientation != 'auto':
    axcodes, source = tuple(orientation), 'flag'
  else:
    axcodes = None if image is None else _header_axcodes(image)
    axcodes, source = (axcodes, 'header') if axcodes else (PROCESSING_AXCODES, 'assumed')
  volume3d = data if data.ndim == 3 else data[..., None]
  slices = orientations.apply_orientation(volume3d, _transform(axcodes, PROCESSING_AXCODES))
  slices = np.ascontiguousarray(np.moveaxis(slices, 2, 0), dtype=np.float32)
  num_slices, height, width = slices.shape
  codes = ''.join(axcodes)
  if data.ndim == 2 and num_slices != 1:
    raise InputError(f'{path}: a 2D image that is not an axial slice (orientation {codes})')
  if min(height, width) < MIN_IN_PLANE or max(height, width) > nifti.MAX_IN_PLANE:
    raise InputError(f'{path}: axial slices of {height}x{width} voxels (orientation {codes}); '
                     f'expected {MIN_IN_PLANE} to {nifti.MAX_IN_PLANE} per side')
  return Scan(path=path, name=name, kind=kind, slices=slices, stored_shape=data.shape,
              axcodes=axcodes, orientation_source=source, image=image, voxel_size_mm=sizes,
              voxel_volume_ml=voxel_ml)


def looks_like_hu(slices):
  return np.count_nonzero(slices < HU_AIR) >= HU_FRACTION * slices.size


def to_8bit_scale(slices, hu):
  """Each (Z, H, W) slice min-max scaled to 0..255 like the MedSeg images, after the lung window
  for HU; a constant slice becomes 0."""
  x = np.asarray(slices, np.float32)
  if hu:
    x = np.clip(x, *preprocess.HU_LUNG_WINDOW)
  low = x.min(axis=(1, 2), keepdims=True)
  span = x.max(axis=(1, 2), keepdims=True) - low
  return ((x - low) * (255.0 / np.where(span > 0, span, 1.0))).astype(np.float32)


def to_8bit(slices, intensity, lung_masked):
  """(slices scaled to 0..255 as float32, how) for `intensity` 'auto', 'hu' or 'minmax'.

  Whole slices are min-max scaled per slice (`to_8bit_scale`), as the MedSeg export was.
  Lung-masked slices were scaled before the masking (the authors' PNGs: a lung-masked slice's
  brightest voxel is not 255), so with 'auto' they keep their scale: HU through the lung
  window's fixed range, 8-bit values (within 0..255) as they are; 'minmax' forces min-max.
  """
  hu = intensity == 'hu' or (intensity == 'auto' and looks_like_hu(slices))
  if lung_masked and hu:
    low, high = preprocess.HU_LUNG_WINDOW
    scaled = (np.clip(slices, low, high) - low) * (255.0 / (high - low))
    return scaled.astype(np.float32), 'HU, lung window'
  if lung_masked and intensity == 'auto' and slices.min() >= 0 and slices.max() <= 255:
    return np.asarray(slices, np.float32), '8-bit, as given'
  how = 'HU, lung window, then min-max per slice' if hu else 'min-max per slice'
  return to_8bit_scale(slices, hu), how


def masked_lung(scan):
  """The lung of a lung-masked scan: voxels that differ from its most common value."""
  values, counts = np.unique(scan.slices, return_counts=True)
  background = values[np.argmax(counts)]
  fraction = counts.max() / scan.slices.size
  if fraction < MIN_BACKGROUND_FRACTION:
    raise InputError(f'{scan.path}: does not look lung-masked (--lung_masked): its most common '
                     f'value {background:g} covers only {fraction:.0%} of the voxels')
  return (scan.slices != background).astype(np.uint8)


@functools.partial(jax.jit, static_argnames=('model', 'size', 'tta_flip', 'foreground_threshold',
                                             'logit_offsets'))
def forward(model, variables, images, size, tta_flip=False, foreground_threshold=0.5,
            logit_offsets=()):
  """Class labels (B, *size) uint8: logits (evaluate.predict_logits) resized (linear) to `size`,
  then labelled (evaluate.labels_from_logits: the argmax, the foreground threshold or the logit
  offsets).

  Compiled once per model, batch shape and output size (flax modules hash by their fields).
  """
  logits = evaluate.predict_logits(model.apply, variables, images, tta_flip)
  if logits.shape[1:3] != size:
    logits = jax.image.resize(logits, (logits.shape[0], *size, logits.shape[-1]), 'linear')
  return evaluate.labels_from_logits(logits, foreground_threshold,
                                     logit_offsets).astype(jnp.uint8)


class Progress:
  """A one-line progress bar redrawn in place on a terminal; silent when the stream is not one."""

  def __init__(self, label, total, stream=None, width=30):
    stream = sys.stderr if stream is None else stream
    self.enabled = total > 1 and stream.isatty()
    self.label, self.total, self.stream, self.width, self.done = label, total, stream, width, 0
    self._draw()

  def _draw(self):
    if self.enabled:
      filled = self.width * self.done // self.total
      self.stream.write(f'\r{self.label} [{"#" * filled}{"." * (self.width - filled)}] '
                        f'{self.done}/{self.total} slices')
      self.stream.flush()

  def update(self, count):
    self.done = min(self.total, self.done + count)
    self._draw()

  def close(self):
    if self.enabled:
      self.stream.write('\n')
      self.stream.flush()


class Model:
  """A trained run checked for its role ('lung' or 'infection'), with its preprocessing.

  `run` has the fields of `checkpoint.restore_run`'s result: model, variables, task,
  num_classes, class_names, step and normalization (method, image_size, lung_mask,
  mean_image).
  """

  def __init__(self, run, role, source, batch_size=16, checkpoint=None):
    self.role, self.source, self.checkpoint = role, str(source), checkpoint
    self.task, self.step = run.task, int(run.step)
    self.class_names = tuple(run.class_names)
    normalization = run.normalization
    self.method = normalization['method']
    self.image_size = int(normalization['image_size'])
    self.lung_mask = bool(normalization['lung_mask'])
    mean_image = normalization.get('mean_image')
    self.mean_image = None if mean_image is None else np.asarray(mean_image, np.float32)
    self.batch_size = batch_size
    self.tta_flip = bool(run.config.eval.get('tta_flip', False))
    self.fill_holes = bool(run.config.eval.get('fill_holes', False))
    self.foreground_threshold = float(run.config.eval.get('foreground_threshold', 0.5))
    self.logit_offsets = tuple(float(x) for x in run.config.eval.get('logit_offsets', ()))
    self._check(run)
    self._model = run.model
    # An ensemble directory's members, relative to it (covseg_jax.ensemble); [] for one run.
    self.members = list(run.config.get('ensemble', {}).get('members', []))
    self._variables = jax.device_put(run.variables, jax.devices()[0])

  def _check(self, run):
    """Rejects a run whose task, classes, normalisation or input do not fit its role."""
    tasks = _INFECTION_TASKS if self.role == 'infection' else ('lung',)
    if self.task not in tasks:
      raise InputError(f'{self.source}: a {self.task!r} run, but --{self.role}_run needs a run of '
                       f'task {" or ".join(map(repr, tasks))}')
    classes = preprocess.num_classes(self.task)
    if run.num_classes != classes or len(self.class_names) != classes:
      raise InputError(f'{self.source}: {run.num_classes} classes {self.class_names}, but task '
                       f'{self.task!r} has {classes}')
    problem = evaluate.decision_problem(self.foreground_threshold, self.logit_offsets, self.task)
    if problem:
      raise InputError(f'{self.source}: {problem}')
    if self.method not in preprocess.NORMALIZATIONS:
      raise InputError(f'{self.source}: unknown normalisation {self.method!r}')
    size = self.image_size
    if self.method == 'zero_center':
      if self.mean_image is None or self.mean_image.shape != (size, size):
        raise InputError(f'{self.source}: zero_center normalisation without a {size}x{size} '
                         'training mean image')
      low, high = float(self.mean_image.min()), float(self.mean_image.max())
      if not (np.isfinite(low) and np.isfinite(high) and -1e-3 <= low and high <= 255.001):
        raise InputError(f'{self.source}: trained on intensities outside 0..255 (mean image '
                         f'{low:.4g}..{high:.4g}); predict feeds 8-bit slices like the MedSeg '
                         'images')
    inputs = jax.ShapeDtypeStruct((1, size, size, 1), jnp.float32)
    try:
      outputs = jax.eval_shape(functools.partial(run.model.apply, train=False), run.variables,
                               inputs)
    except (flax.errors.FlaxError, TypeError, ValueError) as e:
      raise InputError(f'{self.source}: the model does not take single-channel {size}x{size} '
                       f'slices ({_first_line(e)})') from None
    if outputs.shape != (1, size, size, classes):
      raise InputError(f'{self.source}: the model outputs {outputs.shape}, expected '
                       f'{(1, size, size, classes)} for task {self.task!r}')

  def describe(self):
    described = {'run': self.source, 'checkpoint': self.checkpoint, 'step': self.step,
                 'task': self.task, 'normalization': self.method,
                 'image_size': self.image_size, 'tta_flip': self.tta_flip,
                 'fill_holes': self.fill_holes, 'foreground_threshold': self.foreground_threshold,
                 'logit_offsets': list(self.logit_offsets)}
    if self.members:
      described['ensemble_members'] = self.members
    return described

  def _normalize(self, resized, lung):
    return preprocess.normalize(resized, self.method, lung=lung,
                                mean_image=self.mean_image)[..., None]

  def _run(self, images, batch, size):
    """Dispatches one batch (padded to `batch`, so each shape compiles once); not blocking."""
    pad = batch - len(images)
    if pad:
      images = np.concatenate([images, np.zeros((pad,) + images.shape[1:], images.dtype)])
    return forward(self._model, self._variables, images, size=size, tta_flip=self.tta_flip,
                   foreground_threshold=self.foreground_threshold,
                   logit_offsets=self.logit_offsets)

  def segment(self, images, lung=None, progress=None):
    """Labels (Z, H, W) uint8 of 8-bit scaled slices (Z, H, W), holes filled if the run's
    eval.fill_holes says so.

    `lung` (Z, H, W) restricts zscore statistics to the lung, as in training; a lung run
    with zscore normalisation, trained with statistics inside the true lung, uses its own
    first estimate (statistics over the whole slice) for a second pass.
    """
    num_slices, height, width = images.shape
    size = (self.image_size, self.image_size)
    batch = min(self.batch_size, num_slices)
    labels = np.empty(images.shape, np.uint8)

    def collect(start, stop, result):
      labels[start:stop] = np.asarray(result)[:stop - start]
      if progress:
        progress.update(stop - start)

    pending = None
    for start in range(0, num_slices, batch):
      stop = min(start + batch, num_slices)
      resized = preprocess.resize_images(images[start:stop], self.image_size)
      small_lung = None if lung is None else preprocess.resize_labels(lung[start:stop],
                                                                      self.image_size)
      if self.task == 'lung' and self.method == 'zscore':
        first = self._run(self._normalize(resized, None), batch, size)
        small_lung = np.asarray(first)[:stop - start]
      result = self._run(self._normalize(resized, small_lung), batch, (height, width))
      if pending:  # Fetched once the next batch is dispatched, so host and device overlap.
        collect(*pending)
      pending = (start, stop, result)
    collect(*pending)
    return evaluate.fill_lung_holes(labels) if self.fill_holes else labels


def load_model(run_dir, role, checkpoint=None, batch_size=16):
  """Restores a training run's workdir as a `Model` for `role` ('lung' or 'infection').

  `checkpoint` is 'best', 'last' or a step number (checkpoint.restore_run); None takes the
  one the run's test metrics were computed with (config.eval.checkpoint).
  """
  path = pathlib.Path(run_dir)
  if not path.is_dir():
    raise InputError(f'{path}: no such run directory (--{role}_run)')
  if checkpoint is None:
    evaluated = checkpoints.load_config(path).get('eval', {}).get('checkpoint', 'last')
    checkpoint = checkpoints.parse_which(evaluated)
  # One device: slices are few enough that splitting batches over devices would not pay.
  run = checkpoints.restore_run(path, which=checkpoint,
                                mesh=parallel.create_mesh(jax.devices()[:1]))
  return Model(run, role, path, batch_size=batch_size, checkpoint=checkpoint)


@dataclasses.dataclass
class Segmentation:
  """Masks of one scan in the processing frame, (Z, H, W) uint8."""
  scaled: np.ndarray  # The 8-bit scaled slices (float32), for the overlays.
  sides: np.ndarray  # 0 outside the lung, severity.RIGHT or severity.LEFT.
  lesions: np.ndarray  # Infection labels, 0 outside the lung.
  intensity: str  # How the slices were scaled to 0..255 (to_8bit).
  sides_method: str


def segment_scan(scan, infection, lung=None, intensity='auto', progress_stream=None):
  """Lungs (from `lung`, a Model, or the lung-masked input when None) and lesions of `scan`."""
  scaled, how = to_8bit(scan.slices, intensity, lung_masked=lung is None)
  num_slices = len(scaled)
  if lung is not None:
    bar = Progress(f'{scan.name}: lungs', num_slices, progress_stream)
    lung_mask = lung.segment(scaled, progress=bar)
    bar.close()
    body = scaled > severity.otsu_threshold(scaled)
    midlines = severity.body_midlines(body, RIGHT_LEFT_AXIS)
    method = severity.BODY_METHOD
  else:
    lung_mask = masked_lung(scan)
    midlines = severity.extent_midlines(lung_mask, RIGHT_LEFT_AXIS)
    method = severity.EXTENT_METHOD
  sides = severity.assign_sides(lung_mask, midlines, RIGHT_LEFT_AXIS)
  bar = Progress(f'{scan.name}: infection', num_slices, progress_stream)
  lesions = segment_lesions(scaled, lung_mask, infection, progress=bar)
  bar.close()
  return Segmentation(scaled=scaled, sides=sides, lesions=lesions, intensity=how,
                      sides_method=method)


def segment_lesions(scaled, lung_mask, infection, progress=None):
  """Lesion labels (Z, H, W) uint8 of 8-bit scaled slices, kept inside `lung_mask`; the
  infection `Model` sees the slices lung-masked if it was trained on lung-masked inputs."""
  inputs = scaled
  if infection.lung_mask:
    inputs = np.where(lung_mask > 0, scaled, 0.0).astype(np.float32)
  lesions = infection.segment(inputs, lung=lung_mask, progress=progress)
  return np.where(lung_mask > 0, lesions, 0).astype(np.uint8)


def output_names(name, kind, overlays):
  """The files written for a scan: {'lung', 'infection', 'severity': name, 'overlays': [...]}."""
  mask_suffix = '.nii.gz' if kind == 'nifti' else '.png'
  return {'lung': f'{name}_lung{mask_suffix}', 'infection': f'{name}_infection{mask_suffix}',
          'severity': f'{name}_severity.json',
          'overlays': [f'{name}_overlay{k}.png' for k in range(1, overlays + 1)]}


def _all_names(names):
  return [names['lung'], names['infection'], names['severity']] + names['overlays']


def representative_slices(segmentation, count):
  """Up to `count` slices with the most lesion voxels (ties: the most lung)."""
  lesion = np.count_nonzero(segmentation.lesions, axis=(1, 2))
  lung = np.count_nonzero(segmentation.sides, axis=(1, 2))
  order = np.lexsort((np.arange(len(lesion)), -lung, -lesion))
  return [int(z) for z in order[:count]]


def _save_overlay(path, scaled, sides, lesions, class_names, title):
  """The slice in radiological display (the processing slice transposed), plain and overlaid."""
  figure = Figure(figsize=(10, 5.4), dpi=100, layout='constrained')
  axes = figure.subplots(1, 2)
  image, sides, lesions = scaled.T, sides.T, lesions.T
  for ax in axes:
    ax.imshow(image, cmap='gray', vmin=0, vmax=255, interpolation='nearest')
    ax.set_axis_off()
  for x, text in ((0.03, 'R'), (0.97, 'L')):
    axes[0].text(x, 0.5, text, transform=axes[0].transAxes, color='white', ha='center',
                 va='center', bbox={'facecolor': 'black', 'alpha': 0.5, 'pad': 2})
  colours = np.zeros(image.shape + (4,))
  handles = []
  for label, name in enumerate(class_names[1:], start=1):
    colour = _LESION_COLOURS.get(name, (1.0, 0.0, 1.0))
    colours[lesions == label] = (*colour, _OVERLAY_ALPHA)
    handles.append(Patch(color=colour, label=name))
  axes[1].imshow(colours, interpolation='nearest')
  for side, colour in _SIDE_COLOURS.items():
    if (sides == side).any():
      axes[1].contour(sides == side, levels=[0.5], colors=[colour], linewidths=0.8)
    handles.append(Line2D([], [], color=colour, label=f'{severity.SIDE_NAMES[side]} lung'))
  axes[1].legend(handles=handles, loc='lower right', fontsize=7, framealpha=0.6)
  figure.suptitle(title, fontsize=10)
  figure.savefig(path)


def _report(scan, segmentation, infection, lung, names, overlays):
  numbers = severity.severity(segmentation.lesions, segmentation.sides, infection.class_names,
                              scan.voxel_volume_ml)
  warnings = []
  if scan.orientation_source == 'assumed':
    warnings.append('the file has no orientation: assumed stored like the MedSeg data (LPS); '
                    'right and left may be swapped')
  if scan.voxel_volume_ml is None:
    warnings.append('voxel size unknown: volumes are not given')
  if not numbers['overall']['lung_voxels']:
    warnings.append('no lung found')
  return {
      'input': str(scan.path),
      'shape': list(scan.stored_shape),
      'voxel_size_mm': None if scan.voxel_size_mm is None else list(scan.voxel_size_mm),
      'voxel_volume_ml': scan.voxel_volume_ml,
      'orientation': {'stored': ''.join(scan.axcodes), 'source': scan.orientation_source,
                      'axial_axis': scan.axial_axis},
      'intensity': segmentation.intensity,
      'models': {'lung': lung.describe() if lung else {'source': 'lung-masked input'},
                 'infection': infection.describe()},
      'classes': list(infection.class_names),
      **numbers,
      'sides_method': segmentation.sides_method,
      'outputs': {'lung': names['lung'], 'infection': names['infection']},
      'overlays': overlays,
      'warnings': warnings,
  }


def write_scan_outputs(scan, segmentation, infection, lung, directory, overlay_count):
  """Writes one scan's masks, report and overlays into `directory`; returns the report."""
  names = output_names(scan.name, scan.kind, overlay_count)
  for key, volume in (('lung', segmentation.sides), ('infection', segmentation.lesions)):
    stored = scan.to_stored(volume).astype(np.uint8)
    if scan.kind == 'nifti':
      header = scan.image.header.copy()
      header['cal_min'] = header['cal_max'] = 0  # The scan's display range means nothing here.
      reference = type(scan.image)(stored, scan.image.affine, header=header)
      nifti.save_nifti(stored, reference, directory / names[key], dtype=np.uint8)
    else:
      Image.fromarray(stored).save(directory / names[key])
  overlays = []
  for rank, z in enumerate(representative_slices(segmentation, overlay_count)):
    lesion_voxels = int(np.count_nonzero(segmentation.lesions[z]))
    lung_voxels = int(np.count_nonzero(segmentation.sides[z]))
    share = f'{100 * lesion_voxels / lung_voxels:.1f} %' if lung_voxels else 'n/a'
    index = scan.stored_index(z)
    where = f' slice {index} (axis {scan.axial_axis})' if len(scan.stored_shape) == 3 else ''
    title = (f'{scan.name}:{where} lesion {share} of lung'
             + (' [orientation assumed]' if scan.orientation_source == 'assumed' else ''))
    _save_overlay(directory / names['overlays'][rank], segmentation.scaled[z],
                  segmentation.sides[z], segmentation.lesions[z], infection.class_names, title)
    overlays.append({'file': names['overlays'][rank], 'slice': index,
                     'lesion_voxels': lesion_voxels, 'lung_voxels': lung_voxels})
  report = _report(scan, segmentation, infection, lung, names, overlays)
  with open(directory / names['severity'], 'w', encoding='utf-8') as f:
    json.dump(report, f, indent=2, allow_nan=False)
  return report


def _check_output_dir(output):
  """Checks that `output` is a directory or can be made as one (it is not made here)."""
  if output.exists() and not output.is_dir():
    raise InputError(f'{output}: exists and is not a directory')
  if not output.exists() and not output.parent.is_dir():
    raise InputError(f'{output}: its parent directory {output.parent} does not exist')


def _check_no_clobber(output, scans, overlay_count, overwrite):
  inputs = [scan.resolve() for scan in scans]
  for scan in scans:
    name, kind = scan_name(scan)
    for file_name in _all_names(output_names(name, kind, overlay_count)):
      target = output / file_name
      if not (target.exists() or target.is_symlink()):
        continue
      if target.resolve() in inputs:
        raise InputError(f'{target}: the output would replace an input scan')
      if target.is_dir():
        raise InputError(f'{target}: a directory is in the way of this output')
      if not overwrite:
        raise InputError(f'{target}: already exists (pass --overwrite to replace it)')


def predict(input_path, output, infection, lung=None, overwrite=False, orientation='auto',
            intensity='auto', overlays=3, progress_stream=None):
  """Segments every scan of `input_path` and writes the outputs into the directory `output`.

  Args:
    input_path: a scan file or a directory of them.
    output: the output directory; made if missing (its parent must exist).
    infection: the infection `Model`.
    lung: the lung `Model`, or None for lung-masked inputs.
    overwrite: whether existing outputs may be replaced.
    orientation: 'auto' or the stored axis codes (a tuple such as ('P', 'L', 'S')).
    intensity: 'auto', 'hu' or 'minmax' (see the module docstring).
    overlays: the number of overlay PNGs per scan.
    progress_stream: where progress bars go (default stderr, drawn only on a terminal).

  Returns:
    The reports, one per scan. Everything is written to a temporary directory inside
    `output` first and moved in place at the end: on any error nothing is written.
  """
  scans = find_scans(input_path)
  output = pathlib.Path(output)
  _check_output_dir(output)
  _check_no_clobber(output, scans, overlays, overwrite)
  made_output = not output.exists()
  try:
    if made_output:
      output.mkdir()
    staging = pathlib.Path(tempfile.mkdtemp(prefix='.predict-', dir=output))
  except OSError as e:
    if made_output:
      shutil.rmtree(output, ignore_errors=True)
    raise InputError(f'{output}: cannot write ({e.strerror or e})') from None
  try:
    reports = []
    for path in scans:
      scan = read_scan(path, orientation)
      segmentation = segment_scan(scan, infection, lung, intensity, progress_stream)
      reports.append(write_scan_outputs(scan, segmentation, infection, lung, staging, overlays))
      del scan, segmentation  # A directory of volumes holds one at a time.
    written = sorted(p.name for p in staging.iterdir())
    for file_name in written:
      os.replace(staging / file_name, output / file_name)
    if overwrite:  # Overlays of an earlier prediction that this one did not make are stale.
      for scan in scans:
        stale = re.compile(re.escape(scan_name(scan)[0]) + r'_overlay\d+\.png')
        for old in output.iterdir():
          if stale.fullmatch(old.name) and old.name not in written:
            old.unlink()
  except OSError as e:
    raise InputError(f'{output}: cannot write ({e.strerror or e})') from None
  finally:
    shutil.rmtree(staging, ignore_errors=True)
    if made_output and not any(output.iterdir()):
      output.rmdir()
  return reports


class Parser(argparse.ArgumentParser):
  """Usage errors as one line, like the input errors."""

  def error(self, message):
    self.exit(2, f'error: {message} (see --help)\n')


def _positive(text):
  value = int(text)
  if value < 1:
    raise argparse.ArgumentTypeError(f'must be at least 1, got {value}')
  return value


def _non_negative(text):
  value = int(text)
  if value < 0:
    raise argparse.ArgumentTypeError(f'must be at least 0, got {value}')
  return value


def checkpoint_flag(text):
  try:
    return checkpoints.parse_which(text)
  except ValueError as e:
    raise argparse.ArgumentTypeError(str(e)) from None


def _orientation(text):
  if text == 'auto':
    return text
  try:
    return parse_axcodes(text)
  except ValueError as e:
    raise argparse.ArgumentTypeError(str(e)) from None


def build_parser():
  parser = Parser(prog='python -m covseg_jax.predict',
                  description='Lung and infection masks and a severity report for CT scans.')
  parser.add_argument('--input', required=True, metavar='SCAN',
                      help='NIfTI (.nii, .nii.gz; 2D or 3D), PNG/JPEG slice, or a directory of '
                           'them')
  parser.add_argument('--output', required=True, metavar='DIR',
                      help='output directory (made if missing; its parent must exist)')
  parser.add_argument('--infection_run', required=True, metavar='RUN',
                      help='workdir of a binary or multi-class infection training run')
  parser.add_argument('--lung_run', metavar='RUN',
                      help='workdir of a lung training run (needed unless --lung_masked)')
  parser.add_argument('--lung_masked', action='store_true',
                      help='the input is already lung-masked: everything outside the lungs has '
                           'one value; the lung mask is read from it')
  parser.add_argument('--checkpoint', type=checkpoint_flag,
                      help="the runs' checkpoint: 'best' (by validation), 'last' or a step "
                           "number (default: the one each run's test metrics used, "
                           "config.eval.checkpoint)")
  parser.add_argument('--overwrite', action='store_true', help='replace existing outputs')
  parser.add_argument('--batch_size', type=_positive, default=16,
                      help='slices per device batch (%(default)s)')
  parser.add_argument('--overlays', type=_non_negative, default=3,
                      help='overlay PNGs per scan, the slices with most lesion (%(default)s)')
  parser.add_argument('--orientation', type=_orientation, default='auto',
                      help="'auto' (the NIfTI header's orientation, else LPS like the MedSeg "
                           "data) or the stored axis codes, e.g. PLS (%(default)s)")
  parser.add_argument('--intensity', choices=INTENSITIES, default='auto',
                      help="'hu' (lung window, then min-max per slice), 'minmax' (min-max per "
                           "slice) or 'auto' (HU when 1%% of voxels are below -500) "
                           "(%(default)s); --lung_masked inputs keep their scale unless "
                           "'minmax': 8-bit as given, HU by the lung window's fixed range")
  return parser


def _summary(report):
  overall = report['overall']
  lesion = overall['lesions'][severity.ANY_LESION]

  def percent(numbers):
    value = numbers['lesions'][severity.ANY_LESION]['percent_of_lung']
    return 'n/a' if value is None else f'{value:.1f} %'

  volume = overall['lung_volume_ml']
  lung_text = f'{volume:.1f} mL' if volume is not None else f'{overall["lung_voxels"]} voxels'
  return (f'{report["input"]}: lung {lung_text}, lesion {percent(overall)} of lung '
          f'(right {percent(report["right"])}, left {percent(report["left"])}), '
          f'{lesion["voxels"]} lesion voxels')


def _run(args):
  """Checks the flags, input and output (cheap, before restoring the runs), then predicts."""
  if args.lung_run and args.lung_masked:
    raise InputError('--lung_run and --lung_masked: pass one of them, not both')
  if not args.lung_run and not args.lung_masked:
    raise InputError('--lung_run missing: the lung mask is needed (the severity is a share of '
                     'the lung, and infection runs mask their input with it); pass '
                     '--lung_run=RUN, or --lung_masked for an input that is lung-masked already')
  output = pathlib.Path(args.output)
  _check_output_dir(output)
  _check_no_clobber(output, find_scans(args.input), args.overlays, args.overwrite)
  infection = load_model(args.infection_run, 'infection', args.checkpoint, args.batch_size)
  lung = None
  if args.lung_run:
    lung = load_model(args.lung_run, 'lung', args.checkpoint, args.batch_size)
  return predict(args.input, output, infection, lung, overwrite=args.overwrite,
                 orientation=args.orientation, intensity=args.intensity, overlays=args.overlays)


def run_command(run, args):
  """(run(args), 0), or (None, 2) after printing its InputError as one line on stderr.

  Library warnings (e.g. orbax falling back past a damaged checkpoint) are muted meanwhile: they
  would break the one-line error; the reports record the step that was restored.
  """
  verbosity = logging.get_verbosity()
  logging.set_verbosity(logging.ERROR)
  try:
    return run(args), 0
  except InputError as e:
    print(f'error: {e}', file=sys.stderr)
    return None, 2
  finally:
    logging.set_verbosity(verbosity)


def main(argv=None):
  """The command line; returns the exit status (2 for bad input, with one line on stderr)."""
  reports, status = run_command(_run, build_parser().parse_args(argv))
  for report in reports or ():
    print(_summary(report))
  return status


if __name__ == '__main__':
  sys.exit(main())
