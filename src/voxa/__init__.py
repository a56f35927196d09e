"""voxa: self-hosted speech AI — transcription, synthesis and voice agents, offline on a CPU.

    >>> import voxa
    >>> t = voxa.transcribe("meeting.mp3")            # Transcript: .text, .segments, .language
    >>> engine = voxa.load_model("whisper-tiny.en")   # reuse one engine for many calls
    >>> results = voxa.transcribe(["a.wav", "b.flac"])  # batched together, returned in order
    >>> audio, rate = voxa.speak("It costs $9.99.")     # float32 mono, 24 kHz (hibari)
    >>> for chunk in voxa.speak_stream(text): ...       # sentence by sentence (also async for)
    >>> for event in voxa.listen("call.wav", pace=1): ...  # live recognition: interim and final results
    >>> d = voxa.diarize("meeting.wav", max_speakers=4)  # who spoke when (the diarize extra)
    >>> t = voxa.transcribe("meeting.wav", diarize=True)  # words and segments with speakers
    >>> hits = voxa.wake.detect("room.wav", ["okay_nabu"])  # wake words, with times
"""

from .asr import Failure, Whisper, load_model, transcribe
from .streaming import listen
from .diarization import diarize
from .errors import AudioError, InputError, ModelError, OutputError, VoxaError
from .tts import Voice, aspeak, load_voice, speak, speak_stream, voices
from .types import Diarization, Segment, Speech, SpeechChunk, Transcript, Turn, VoiceInfo, WakeDetection, Word

__version__ = "0.1.0"

__all__ = [
    "AudioError", "Diarization", "Failure", "InputError", "ModelError", "OutputError", "Segment", "Speech",
    "SpeechChunk", "Transcript", "Turn", "Voice", "VoiceInfo", "VoxaError", "WakeDetection", "Whisper", "Word", "aspeak",
    "diarize", "listen", "load_model", "load_voice", "speak", "speak_stream", "transcribe", "voices", "__version__",
]
