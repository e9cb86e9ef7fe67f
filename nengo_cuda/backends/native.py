"""What the backends share: a native program (``native``, None once closed)
that runs the planned program's steps."""


class NativeBackend:
    """Base of the CPU and CUDA backends: ``self.native`` is their native
    program."""

    native = None

    @property
    def steps_done(self):
        """Steps the last run completed (on an exception, those before it)."""
        return self.native.steps_done

    def request_stop(self):
        """Stops a run in progress (another thread's) at its next slice
        boundary: it raises there (`nengo_cuda.native_runs`)."""
        native = self.native
        if native is not None:
            native.request_stop()
