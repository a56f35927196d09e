"""voxa: self-hosted speech AI — transcription, synthesis and voice agents, offline on a CPU.

    >>> import voxa
    >>> t = voxa.transcribe("meeting.mp3")            # Transcript: .text, .segments, .language
    >>> engine = voxa.load_model("whisper-tiny.en")   # reuse one engine for many calls
    >>> results = voxa.transcribe(["a.wav", "b.flac"])  # batched together, returned in order
"""

from .asr import Failure, Whisper, load_model, transcribe
from .errors import AudioError, InputError, ModelError, OutputError, VoxaError
from .types import Segment, Transcript, Word

__version__ = "0.1.0"

__all__ = [
    "AudioError", "Failure", "InputError", "ModelError", "OutputError", "Segment", "Transcript",
    "VoxaError", "Whisper", "Word", "load_model", "transcribe", "__version__",
]
