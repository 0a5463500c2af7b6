"""The command line's exit statuses."""

EXIT_USER_ERROR = 2  # bad input, options or environment: the message says what to change
EXIT_INTERNAL_ERROR = 70  # a bug (EX_SOFTWARE): the message names the crash log that holds the traceback
EXIT_INTERRUPTED = 130
# 3: `gifstream setup-gpu` where torch has no CUDA device (render/gpu_setup.py: EXIT_NO_CUDA, NoCudaError.exit_status)
