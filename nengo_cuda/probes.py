"""Probe recordings and the ``sim.data`` mapping.

The native loop writes probed values into preallocated arrays, one chunk per
``run_steps`` chunk; `SimulationData` joins the chunks on access.
"""

import copy
import threading
from collections.abc import Mapping, Sequence

import nengo
import numpy as np

from .errors import UnknownObjectError


def samples_done(buffer, mask, steps, done):
    """Samples a run of ``steps`` steps has recorded into ``buffer`` (of
    shape (trials, samples, size), sampled at ``mask``'s steps) after
    ``done`` of them."""
    return done if buffer.shape[1] == steps else int(mask[:done].sum())


class ChunkInFlight:
    """A recording's samples in the native run going on, as a callback reads
    them (nengo.Simulator's probe data grows step by step): the run's output
    ``buffer`` (trials, samples, size), its sample ``mask`` over the run's
    ``steps``, and which samples were deleted during the run
    (``clear_probes``, ``del sim.data.raw[probe][...]``).  Not ``readable``
    while the buffer is not filled step by step (the CUDA backend's comes back
    when the run ends): callbacks then see none of the run's samples, but
    deleting counts them, as Nengo's (``del raw[probe][-3:]``: the run's last
    three so far)."""

    __slots__ = ("buffer", "mask", "steps", "kept", "readable")

    def __init__(self, buffer, mask, steps, readable=True):
        self.buffer, self.mask, self.steps = buffer, mask, steps
        self.kept = None  # (None: every sample; else a bool per sample)
        self.readable = readable

    def samples(self, done):
        """The samples of the run's first ``done`` steps, less those deleted."""
        rows = self.buffer[:, : samples_done(self.buffer, self.mask, self.steps, done)]
        return rows if self.kept is None else rows[:, self.kept[: rows.shape[1]]]

    def count(self, done):
        """How many samples ``samples(done)`` holds (also where not readable)."""
        end = samples_done(self.buffer, self.mask, self.steps, done)
        return end if self.kept is None else int(self.kept[:end].sum())

    def delete(self, positions, done):
        """Deletes the samples at ``positions`` (an index, slice or array of
        them) of ``samples(done)``."""
        if self.kept is None:
            self.kept = np.ones(self.buffer.shape[1], dtype=bool)
        end = samples_done(self.buffer, self.mask, self.steps, done)
        self.kept[np.flatnonzero(self.kept[:end])[positions]] = False


class ProbeRecording:
    """Chunks of one probe's samples, each of shape ``(trials, samples, size)``.

    ``keep_history=False`` (NengoDL's setting): each run keeps only its last
    sample, so ``sim.data`` holds one sample per ``run_steps`` call.
    """

    def __init__(self, shape, n_trials, keep_history=True):
        self.shape = tuple(shape)
        self.size = int(np.prod(self.shape))  # values a trial records per sample
        self.n_trials = n_trials
        self.keep_history = keep_history
        self.chunks = []
        self.n_samples = 0
        self._run_start = 0  # samples before the current run
        # (a GUI thread may delete samples while the simulator's thread appends)
        self._lock = threading.RLock()

    def copy(self):
        """A recording of the same samples, which changes apart from this one."""
        twin = copy.copy(self)
        twin.chunks, twin._lock = list(self.chunks), threading.RLock()
        return twin

    def take(self, other):
        """Takes the samples of ``other`` (a `copy` of this recording)."""
        with self._lock:
            self.chunks, self.n_samples = list(other.chunks), other.n_samples
            self._run_start = other._run_start

    def start_run(self):
        """Marks where the samples of a new ``run_steps`` call begin."""
        self._run_start = self.n_samples

    def append(self, chunk):
        with self._lock:
            self._append(chunk)

    def _append(self, chunk):
        if not self.keep_history:
            if chunk.shape[1] == 0:
                return  # (an earlier chunk of this run may hold its last sample)
            # the run's earlier samples give way to this chunk's last one
            self.truncate(self._run_start)
            chunk = chunk[:, -1:].copy()  # (a copy: the chunk's buffer is freed)
        self.chunks.append(chunk)
        self.n_samples += chunk.shape[1]

    def truncate(self, n_samples):
        """Keeps the first ``n_samples`` samples."""
        while self.n_samples > n_samples:
            last = self.chunks[-1]
            drop = min(last.shape[1], self.n_samples - n_samples)
            if drop == last.shape[1]:
                self.chunks.pop()
            else:
                self.chunks[-1] = last[:, : last.shape[1] - drop]
            self.n_samples -= drop

    def clear(self):
        self.chunks, self.n_samples = [], 0
        self._run_start = 0

    def delete(self, index):
        """Deletes the samples at ``index`` (an int or a slice, as on a list)."""
        with self._lock:
            positions = np.arange(self.n_samples)[index]  # (IndexError as a list's)
            kept = np.delete(self._joined(), positions, axis=1)
            self._run_start -= int(np.count_nonzero(np.atleast_1d(positions) < self._run_start))
            self.chunks, self.n_samples = [kept], kept.shape[1]

    def _joined(self):
        """All samples as one chunk ``(trials, n, size)`` (joined once)."""
        with self._lock:
            if len(self.chunks) > 1:
                self.chunks = [np.concatenate(self.chunks, axis=1)]
            return self.chunks[0] if self.chunks else self._no_samples()

    def _no_samples(self):
        return np.zeros((self.n_trials, 0, self.size))

    def array(self, minibatched, pending=None):
        """All samples: ``(trials, n, *shape)`` if minibatched else ``(n, *shape)``;
        ``pending``: samples ``(trials, k, size)`` not appended yet come last."""
        data = self._joined()
        if pending is not None and pending.shape[1]:
            data = np.concatenate([data, pending], axis=1) if data.shape[1] else pending.copy()
        if not minibatched and data.shape[1] == 0:
            return np.zeros(0, data.dtype)  # as nengo.Simulator's np.asarray([])
        data = data.reshape((self.n_trials, data.shape[1]) + self.shape)
        return data if minibatched else data[0]

    def values_since(self, n_samples):
        """The samples from the ``n_samples``-th on, as values ``(trials,
        samples, size)``, joining only their chunks (``predict`` takes each
        minibatch's after a long history)."""
        with self._lock:
            pieces, end = [], self.n_samples
            for chunk in reversed(self.chunks):
                if end <= n_samples:
                    break
                start = end - chunk.shape[1]
                pieces.append(chunk[:, max(0, n_samples - start):])
                end = start
        if not pieces:
            return self._no_samples()
        return pieces[0] if len(pieces) == 1 else np.concatenate(pieces[::-1], axis=1)

    def load(self, data, dtype):
        """Takes ``array(minibatched=True)``'s samples (a pickled simulator's),
        as ``dtype``: the run's chunks join them (no samples yet: float64)."""
        # (not `append`: keep_history=False would trim)
        self.chunks = [data.reshape(data.shape[:2] + (self.size,)).astype(dtype)]
        self.n_samples = data.shape[1]


class SparseRecording(ProbeRecording):
    """Samples of a sparse signal: a `nengo.Sparse` transform's weights, which
    no learning rule changes (Nengo refuses learning on them); training and
    load_params change them between runs.  The native run records nothing
    (``size`` 0) and only counts the samples; each chunk holds, per sample,
    the matrix at its run (``current()``: a copy of the matrix now, one per
    chunk), and each sample in ``sim.data`` is a copy of it, as
    ``nengo.Simulator`` records it."""

    def __init__(self, current, shape, n_trials, keep_history=True):
        super().__init__(shape, n_trials, keep_history)
        self.current = current
        self.size = 0

    def append(self, chunk):
        super().append(self._matrices(chunk))

    def _matrices(self, chunk):
        """A chunk's samples (its second axis) as the matrix now."""
        matrices = np.empty((self.n_trials, chunk.shape[1], 1), dtype=object)
        if matrices.size:
            matrices.fill(self.current())
        return matrices

    def _no_samples(self):
        return np.empty((self.n_trials, 0, 1), dtype=object)

    def array(self, minibatched, pending=None):
        samples = self._joined()
        if pending is not None and pending.shape[1]:
            samples = np.concatenate([samples, self._matrices(pending)], axis=1)
        samples = samples[:, :, 0].copy()
        for index in np.ndindex(samples.shape):
            samples[index] = samples[index].copy()
        return samples if minibatched else samples[0]

    def values_since(self, n_samples):
        """As values (``predict``'s arrays): the dense matrix, at each sample."""
        matrices = ProbeRecording.values_since(self, n_samples)[:, :, 0]
        dense = np.zeros(matrices.shape + (int(np.prod(self.shape)),))
        for index in np.ndindex(matrices.shape):
            dense[index] = matrices[index].toarray().ravel()
        return dense

    def load(self, data, dtype):
        self.chunks = [np.asarray(data, dtype=object).reshape(data.shape[:2] + (1,))]
        self.n_samples = data.shape[1]


class SimulationData(Mapping):
    """``sim.data``: probe data, and build artefacts (``sim.data[ens].encoders``).

    ``current``: None (the build's artefacts as they are), or a function
    (obj, built) -> the artefact with its parameters' current values (trained
    ones; `nengo_cuda.params`).  ``live``: None, or a function (recording) ->
    ``(ChunkInFlight, steps done)`` of the run going on, or None.
    """

    def __init__(self, raw, recordings, minibatched, current=None, live=None):
        self.raw = RawData(raw, recordings, minibatched, self.reset, live)
        self.recordings = recordings
        self.minibatched = minibatched
        self.current = current
        self.live = live
        self._cache = {}

    def __getitem__(self, key):
        rec = self.recordings.get(key)
        if rec is None:
            if key not in self.raw.params:
                raise UnknownObjectError(
                    "not an object of the network this simulator built (sim.data holds "
                    "its probes, ensembles, connections and other built objects)",
                    attr="obj", obj=key)
            built = self.raw.params[key]
            return built if self.current is None else self.current(key, built)
        pending = _pending(self.live, rec)
        if pending is not None and pending.shape[1]:  # (read during a run: not kept)
            value = rec.array(self.minibatched, pending)
            value.setflags(write=False)
            return value
        cached = self._cache.get(key)
        if cached is None or cached[0] != rec.n_samples:
            value = rec.array(self.minibatched)
            value.setflags(write=False)
            cached = self._cache[key] = (rec.n_samples, value)
        return cached[1]

    def __contains__(self, key):
        return key in self.recordings or key in self.raw

    def get_params(self, *obj_attrs):
        """NengoDL's: the current values of ``(object, attribute)`` pairs of built
        parameters, e.g. ``(ens, "scaled_encoders")``, ``(ens, "bias")``,
        ``(conn, "weights")`` (``self[obj]``'s attributes; Neurons mean their
        Ensemble)."""
        values = []
        for obj, attr in obj_attrs:
            obj = obj.ensemble if isinstance(obj, nengo.ensemble.Neurons) else obj
            values.append(getattr(self[obj], attr))
        return values

    def __iter__(self):
        return iter(self.raw)

    def __len__(self):
        return len(self.raw)

    def __repr__(self):
        return f"SimulationData({list(self.raw)!r})"

    def reset(self):
        self._cache.clear()

    def show(self, recordings):
        """Shows the samples of ``recordings`` (probe -> recording) from now on."""
        self.recordings = self.raw.recordings = recordings
        self.reset()


def _pending(live, rec):
    """``rec``'s samples of the native run going on (not appended yet), or None."""
    chunk = None if live is None else live(rec)
    return None if chunk is None or not chunk[0].readable else chunk[0].samples(chunk[1])


class RawData(Mapping):
    """``sim.data.raw``, as nengo.Simulator's: the model's ``params``, where a
    probe's entry is the list of its samples (`ProbeSamples`).  nengo_gui's
    voltage plot reads ``raw[probe][:]`` and then empties it with
    ``del raw[probe][:]``."""

    def __init__(self, params, recordings, minibatched, changed, live=None):
        self.params = params
        self.recordings = recordings
        self.minibatched = minibatched
        self.changed = changed  # (drops sim.data's joined arrays)
        self.live = live  # (as SimulationData's)

    def __getitem__(self, key):
        rec = self.recordings.get(key)
        if rec is None:
            return self.params[key]
        return ProbeSamples(rec, self.minibatched, self.changed, self.live)

    def __contains__(self, key):
        return key in self.recordings or key in self.params

    def __iter__(self):
        return iter(self.params)

    def __len__(self):
        return len(self.params)


class ProbeSamples(Sequence):
    """One probe's samples as a list: ``len``, indexing (a sample: the probe's
    shape, with the trials first in a minibatch) and deletion of samples."""

    def __init__(self, recording, minibatched, changed, live=None):
        self.recording = recording
        self.minibatched = minibatched
        self.changed = changed
        self.live = live  # (the samples of a run going on come last: SimulationData's)

    def __len__(self):
        pending = _pending(self.live, self.recording)
        return self.recording.n_samples + (0 if pending is None else pending.shape[1])

    def __getitem__(self, index):
        data = self.recording.array(self.minibatched, _pending(self.live, self.recording))
        axis = 1 if self.minibatched else 0

        def sample(i):  # (a sparse probe's sample is its matrix itself)
            value = data.take(i, axis=axis)
            return value if data.dtype == object and not self.minibatched else np.array(value)

        if isinstance(index, slice):
            return [sample(i) for i in range(*index.indices(data.shape[axis]))]
        return sample(index)

    def __delitem__(self, index):
        live = None if self.live is None else self.live(self.recording)
        if live is None:
            self.recording.delete(index)
        else:  # (positions past the recording's are the run's samples so far)
            stored = self.recording.n_samples
            total = stored + live[0].count(live[1])  # (those a callback cannot see too)
            positions = np.atleast_1d(np.arange(total)[index])  # (IndexError as a list's)
            self.recording.delete(positions[positions < stored])
            live[0].delete(positions[positions >= stored] - stored, live[1])
        self.changed()

    def __repr__(self):
        return repr(self[:])
