"""Speech recognition: Whisper on CTranslate2 (faster-whisper), packed and batched.

``Whisper`` is an engine you build once and reuse. ``transcribe_many`` takes any number of
inputs and streams them through one pipeline:

  decode (audio.stream) -> speech regions (vad) -> pack into 30 s windows (packing)
  -> batched encoder + greedy/beam decoder (CTranslate2) -> fallback for doubtful windows
  -> unpack to inputs -> repetition guard (voxa.guards) -> Transcript

Why not faster-whisper's ``transcribe``: it decodes one input at a time and pads each short
input to 30 s. Packing speech from many inputs into full windows does the same work with a
fraction of the encoder passes (see benchmarks/asr.py). faster-whisper's pieces are reused:
its model wrapper, feature extractor, tokenizer, temperature fallback and word alignment.

Language: given, or detected per input from a window holding only that input (Whisper's
language-ID on the input's first 30 s of speech); windows then only mix inputs of one language.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace

import numpy as np

from . import audio as audio_io
from . import guards
from .errors import InputError, VoxaError
from .packing import WINDOW_S, Piece, Window, leftovers, pack, starved, unpack
from .registry import canonical, resolve
from .types import Segment, Transcript, Word
from .vad import VadConfig, stream_regions

log = logging.getLogger("voxa.asr")

TASKS = ("transcribe", "translate")
_PREPEND, _APPEND = "\"'“¿([{-", "\"'.。,，!！?？:：”)]}、"
_ENCODER_WINDOWS = (1000, 1500, 2000, 3000)  # decode_clips: encoder input in mel frames (10 ms each)
# decode_clips: max_length per second of audio. CTranslate2 returned at most max_length / 2 tokens
# in a probe (tiny.en, 8-30), so about 6 tokens a second in effect; the eval set's speech in 9
# languages needs at most 4.7.
_TOKENS_PER_S = 12
# Buffer this much speech (seconds) before packing, per window of batch: bounded memory,
# and enough choice for the packer to fill windows well.
_LOOKAHEAD_WINDOWS = 2


@dataclass
class Options:
    language: str | None = None
    task: str = "transcribe"
    beam_size: int = 3  # measured: as accurate as 5 on packed windows, faster (benchmarks/asr.py)
    batch_size: int = 8
    word_timestamps: bool = False
    vad: bool = True
    initial_prompt: str | None = None
    temperatures: tuple[float, ...] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
    compression_ratio_threshold: float = 2.4
    log_prob_threshold: float = -1.0
    no_speech_threshold: float = 0.6
    gap_s: float = 1.0  # silence between packed pieces
    timestamps: bool = False  # decode Whisper's timestamp tokens (else text + word alignment)
    pack: bool = True  # False: one input's region per window (no cross-input packing)
    max_duration: float | None = None  # seconds; a longer input fails (TooLong) while it is decoded
    vad_config: VadConfig = field(default_factory=VadConfig)


@dataclass
class Failure:
    """An input that could not be transcribed; the others go on."""

    source: str
    error: VoxaError


@dataclass
class _Input:
    index: int
    name: str
    language: str | None
    language_probability: float = 0.0
    duration: float = 0.0
    reading: bool = True  # still producing pieces
    outstanding: int = 0  # pieces handed out and not yet decoded
    waiting: list[Piece] = field(default_factory=list)  # pieces held back until language is known
    detecting: bool = False
    segments: list[tuple[float, Segment]] = field(default_factory=list)
    error: VoxaError | None = None
    done_s: float = 0.0


def languages() -> list[str]:
    from faster_whisper.tokenizer import _LANGUAGE_CODES

    return sorted(_LANGUAGE_CODES)


class Whisper:
    """A loaded Whisper model. Thread-compatible, not thread-safe: one call at a time."""

    def __init__(self, model: str | None = None, *, device: str = "cpu", compute_type: str = "int8",
                 cpu_threads: int = 0):
        from faster_whisper import WhisperModel

        self.name, path = resolve(model, "asr")
        self.model = WhisperModel(str(path), device=device, compute_type=compute_type,
                                  cpu_threads=cpu_threads, local_files_only=True)
        self.multilingual = self.model.model.is_multilingual

    # ------------------------------------------------------------------ public API
    def transcribe(self, source: audio_io.Source, **options) -> Transcript:
        """Transcribe one input; raises VoxaError on bad input."""
        (result,) = list(self.transcribe_many([source], **options))
        if isinstance(result, Failure):
            raise result.error
        return result

    def transcribe_many(
        self, sources: Iterable[audio_io.Source], *, on_progress: Callable[[float], None] | None = None,
        **options,
    ) -> Iterator[Transcript | Failure]:
        """Transcribe inputs together, yielding each result in input order as soon as it is done."""
        opts = self._options(options)
        sources = list(sources)
        inputs = [_Input(i, audio_io.source_name(s), opts.language) for i, s in enumerate(sources)]
        if not self.multilingual:
            for inp in inputs:
                inp.language, inp.language_probability = "en", 1.0
        elif opts.language:
            for inp in inputs:
                inp.language_probability = 1.0
        next_out = 0
        for _ in self._run(sources, inputs, opts, on_progress):
            while next_out < len(inputs) and self._finished(inputs[next_out]):
                yield self._result(inputs[next_out], opts)
                inputs[next_out] = None  # free its segments
                next_out += 1
        while next_out < len(inputs):
            yield self._result(inputs[next_out], opts)
            next_out += 1

    # ------------------------------------------------------------------ options
    def check_options(self, **options) -> None:
        """Raise InputError for options transcribe() would refuse, before any audio is read."""
        self._options(options)

    def _options(self, kw: dict) -> Options:
        opts = Options()
        unknown = set(kw) - set(Options.__dataclass_fields__)
        if unknown:
            raise InputError(f"unknown option(s): {', '.join(sorted(unknown))}")
        opts = replace(opts, **kw)
        if opts.task not in TASKS:
            raise InputError(f"unknown task {opts.task!r}; choose transcribe or translate")
        if opts.language:
            opts.language = opts.language.lower()
            if opts.language not in languages():
                raise InputError(f"unknown language code {opts.language!r} (use ISO 639-1 codes such as en, de, es)")
            if not self.multilingual and opts.language != "en":
                raise InputError(f"model {self.name} is English-only; use whisper-base for {opts.language!r}")
        if not self.multilingual and opts.task == "translate":
            raise InputError(f"model {self.name} is English-only and cannot translate; use whisper-base")
        if opts.beam_size < 1 or opts.batch_size < 1:
            raise InputError("beam size and batch size must be at least 1")
        return opts

    # ------------------------------------------------------------------ scheduling
    @staticmethod
    def _finished(inp: _Input | None) -> bool:
        return inp is None or inp.error is not None or (
            not inp.reading and inp.outstanding == 0 and not inp.waiting and not inp.detecting)

    def _run(self, sources, inputs: list[_Input], opts: Options, on_progress) -> Iterator[None]:
        """Read pieces, pack, decode; yields after every decoded batch."""
        pool: dict[str, list[Piece]] = {}  # language -> pieces ready to pack
        detect: list[Window] = []  # one window per input whose language is unknown
        pooled_s = 0.0  # seconds of speech held in pool, detect windows and waiting lists
        budget = opts.batch_size * WINDOW_S * _LOOKAHEAD_WINDOWS
        readers = ((inp, self._pieces(src, inp, opts)) for inp, src in zip(inputs, sources))
        current = next(readers, None)

        def progress(inp: _Input, t: float) -> None:
            if on_progress and t > inp.done_s:
                on_progress(t - inp.done_s)
                inp.done_s = t

        while True:
            # 1. read until there is enough to fill a batch well (or input runs out)
            while current is not None and pooled_s < budget:
                inp, it = current
                piece = next(it, None)
                if piece is None:
                    inp.reading = False
                    if self._finished(inp) and inp.error is None:
                        progress(inp, inp.duration)
                    current = next(readers, None)
                    yield
                    continue
                pooled_s += piece.duration
                if inp.language is None:
                    w = next((w for w in detect if w.pieces[0].file == inp.index), None)
                    if w is None and not inp.detecting:
                        w = Window(None)
                        detect.append(w)
                        inp.detecting = True
                    if w is not None and w.fits(piece, opts.gap_s) and not inp.waiting:
                        w.add(piece, opts.gap_s)
                    else:
                        inp.waiting.append(piece)
                    continue
                inp.outstanding += 1
                pool.setdefault(inp.language, []).append(piece)
            # 2. pack and decode one batch
            if not detect and not any(pool.values()):
                if current is None:
                    return
                continue
            batch = detect[: opts.batch_size]
            detect = detect[len(batch):]
            if len(batch) < opts.batch_size and any(pool.values()):
                for lang in list(pool):
                    if len(batch) >= opts.batch_size:
                        break
                    windows = pack(pool.pop(lang), opts.gap_s, lang, together=opts.pack)
                    take, rest = windows[: opts.batch_size - len(batch)], windows[opts.batch_size - len(batch):]
                    batch += take
                    if rest:  # keep what does not fit this batch for the next round
                        pool[lang] = [p for w in rest for p in w.pieces]
            pooled_s -= sum(w.length - (len(w.pieces) - 1) * opts.gap_s for w in batch)
            requeue = self._decode(batch, inputs, opts)
            # 3. bookkeeping: languages learnt, pieces released, progress
            for w in batch:
                for p in w.pieces:
                    inp = inputs[p.file]
                    if inp is None:
                        continue
                    if w.language is not None:
                        inp.outstanding -= 1
                    progress(inp, p.start + p.duration)
                if w.language is None:
                    inp = inputs[w.pieces[0].file]
                    inp.detecting = False
                    inp.outstanding += len(inp.waiting)
                    pool.setdefault(inp.language, []).extend(inp.waiting)
                    inp.waiting = []
            for p in requeue:
                inputs[p.file].outstanding += 1
                pool.setdefault(inputs[p.file].language, []).append(p)
                pooled_s += p.duration
            for inp in inputs:
                if inp is not None and self._finished(inp) and inp.error is None:
                    progress(inp, inp.duration)
            yield

    def _pieces(self, source, inp: _Input, opts: Options) -> Iterator[Piece]:
        """Speech regions of one input as Pieces; records its duration; errors end the input."""
        total = 0

        def blocks():
            nonlocal total
            for block in audio_io.stream(source, block_seconds=120.0, max_seconds=opts.max_duration):
                total += block.size
                yield block

        try:
            for region in stream_regions(blocks(), opts.vad_config, vad=opts.vad):
                if _rms(region.audio) >= _SILENCE_RMS:  # digital silence makes Whisper invent text
                    yield Piece(inp.index, region.start, region.audio)
        except VoxaError as e:
            inp.error = e
        finally:
            inp.duration = total / audio_io.SAMPLE_RATE

    # ------------------------------------------------------------------ decoding
    def tokenizer(self, language: str, task: str):
        from faster_whisper.tokenizer import Tokenizer

        return Tokenizer(self.model.hf_tokenizer, self.multilingual, task=task, language=language)

    def _decode(self, windows: list[Window], inputs: list[_Input], opts: Options) -> list[Piece]:
        """Decode a batch of windows; results go to their inputs. Returns the pieces (or
        tails) the decoder did not reach, to be decoded again."""
        requeue: list[Piece] = []
        fe = self.model.feature_extractor
        feats = np.stack([fe(w.audio(), padding=0)[:, :3000] for w in windows]).astype(np.float32)
        encoder_output = self.model.encode(feats)
        languages: list[tuple[str, float]] = [(w.language, 1.0) for w in windows]
        if any(w.language is None for w in windows):
            detected = self.model.model.detect_language(encoder_output)
            for i, w in enumerate(windows):
                if w.language is None:
                    tok, prob = detected[i][0]
                    languages[i] = (tok[2:-2], float(prob))
                    inp = inputs[w.pieces[0].file]
                    inp.language, inp.language_probability = languages[i][0], round(languages[i][1], 4)
        prompts, tokenizers = [], []
        for lang, _ in languages:
            tok = self.tokenizer(lang, opts.task)
            tokenizers.append(tok)
            previous = tok.encode(" " + opts.initial_prompt.strip()) if opts.initial_prompt else []
            prompts.append(self.model.get_prompt(tok, previous, without_timestamps=not opts.timestamps))
        results = self.model.model.generate(
            encoder_output, prompts, beam_size=opts.beam_size, max_length=self.model.max_length,
            return_scores=True, return_no_speech_prob=True, suppress_blank=True,
            suppress_tokens=[-1], max_initial_timestamp_index=50,
        )
        for i, (w, res) in enumerate(zip(windows, results)):
            tokens = res.sequences_ids[0]
            avg_logprob = res.scores[0] / (len(tokens) + 1)
            text = tokenizers[i].decode(tokens).strip()
            temperature = 0.0
            if self._doubtful(text, avg_logprob, res.no_speech_prob, opts):
                res, avg_logprob, temperature, _ = self.model.generate_with_fallback(
                    self._slice(encoder_output, i),
                    prompts[i], tokenizers[i], self._fw_options(opts))
                tokens = res.sequences_ids[0]
            if res.no_speech_prob > opts.no_speech_threshold and avg_logprob < opts.log_prob_threshold:
                continue  # Whisper's own silence rule: nothing said here
            requeue += self._emit(w, i, tokens, tokenizers[i], encoder_output, opts, inputs, dict(
                avg_logprob=round(float(avg_logprob), 4), no_speech_prob=round(float(res.no_speech_prob), 4),
                compression_ratio=round(guards.compression_ratio(tokenizers[i].decode(tokens)), 3),
                temperature=temperature))
        return requeue

    @staticmethod
    def _slice(encoder_output, rows: int | list[int]):
        """Some rows of a batched encoder output, as a new StorageView."""
        import ctranslate2

        arr = np.asarray(encoder_output)
        arr = arr[rows : rows + 1] if isinstance(rows, int) else arr[rows]
        return ctranslate2.StorageView.from_array(np.ascontiguousarray(arr))

    @staticmethod
    def _doubtful(text: str, avg_logprob: float, no_speech_prob: float, opts: Options) -> bool:
        if guards.compression_ratio(text) > opts.compression_ratio_threshold:
            return True
        silent = no_speech_prob > opts.no_speech_threshold
        return avg_logprob < opts.log_prob_threshold and not silent

    def _fw_options(self, opts: Options):
        from faster_whisper.transcribe import TranscriptionOptions

        return TranscriptionOptions(
            beam_size=max(opts.beam_size, 5), best_of=5, patience=1.0, length_penalty=1.0,
            repetition_penalty=1.0, no_repeat_ngram_size=0, log_prob_threshold=opts.log_prob_threshold,
            no_speech_threshold=opts.no_speech_threshold,
            compression_ratio_threshold=opts.compression_ratio_threshold,
            condition_on_previous_text=False, prompt_reset_on_temperature=0.5,
            temperatures=list(opts.temperatures), initial_prompt=None, prefix=None, suppress_blank=True,
            suppress_tokens=[-1], without_timestamps=False, max_initial_timestamp=1.0,
            word_timestamps=False, prepend_punctuations=_PREPEND, append_punctuations=_APPEND,
            multilingual=False, max_new_tokens=None, clip_timestamps="0", hallucination_silence_threshold=None,
            hotwords=None,
        )

    def _emit(self, w: Window, i: int, tokens, tok, encoder_output, opts: Options, inputs, stats) -> list[Piece]:
        if opts.timestamps:
            segs, _, complete = self.model._split_segments_by_timestamps(
                tokenizer=tok, tokens=tokens, time_offset=0.0, segment_size=3000,
                segment_duration=WINDOW_S, seek=0)
        else:
            segs, complete = [dict(start=0.0, end=w.length, tokens=tokens)], True
        for s in segs:
            s["text"] = tok.decode([t for t in s["tokens"] if t < tok.eot])
            s["start"], s["end"] = min(s["start"], w.length), min(max(s["end"], s["start"]), w.length)
            s["seek"] = 0
        needs_words = opts.word_timestamps or not opts.timestamps or (
            len(w.pieces) > 1 and any(w.spans_join(s["start"], s["end"]) for s in segs))
        if needs_words and any(s["text"].strip() for s in segs):
            view = self._slice(encoder_output, i) if np.asarray(encoder_output).shape[0] > 1 else encoder_output
            self.model.add_word_timestamps(
                [segs], tok, view, [3000], _PREPEND, _APPEND, 0.0)
        # How far the decoder got (Whisper's seek): an unfinished last segment is dropped and
        # speech the decoder skipped after it stopped is queued to be decoded again.
        stamps = [t for t in tokens if t >= tok.timestamp_begin]
        if opts.timestamps:
            reached = (stamps[-1] - tok.timestamp_begin) * 0.02 if stamps else w.length
        else:
            words = [x for s in segs for x in s.get("words") or []]
            reached = words[-1]["end"] if words else 0.0
        rest = leftovers(w, reached, min_rest=1.0 if complete else 0.3)
        unpacked = unpack(w, segs, stats)
        redo = starved(w, unpacked)
        for k in redo:
            p = w.pieces[k]
            rest = [r for r in rest if not (r.file == p.file and p.start <= r.start < p.start + p.duration)]
            rest.append(Piece(p.file, p.start, p.audio, p.retries + 1, solo=True))
        for k, seg in unpacked:
            if k in redo:
                continue
            inp = inputs[w.pieces[k].file]
            if inp is None:
                continue
            if not opts.word_timestamps:
                seg.words = None
            inp.segments.append((seg.start, seg))
        return rest

    # ------------------------------------------------------------------ short clips (live streams)
    def decode_clips(self, clips: list[np.ndarray], languages: list[str | None], *, beam_size: int = 1,
                     task: str = "transcribe", prefixes: list[str] | None = None) -> list[tuple[list[Word], str | None]]:
        """Decode short clips (≤ 30 s each) in one batch, as live streams need: words with times
        relative to each clip, and the language used. A clip Whisper judges to be silence or a
        loop yields no words. ``prefixes``: what was already said at the start of each clip; it is forced as the start
        of the transcript (Whisper's decoder prefix) and only the words after it are returned.

        The encoder runs on a 10, 15 or 20 s window when the clips fit (CTranslate2 accepts
        shorter mel input): tiny.en's LibriSpeech WER stayed within noise of the 30 s window
        (17.4% / 16.4% against 16.6% on 40 utterances) at half the cost.
        """
        if not clips:
            return []
        model = self.model
        fe = model.feature_extractor
        feats = [fe(c, padding=0)[:, :3000] for c in clips]
        frames = max(f.shape[1] for f in feats) + 100
        ctx = next((c for c in _ENCODER_WINDOWS if frames <= c), 3000)
        x = np.zeros((len(clips), feats[0].shape[0], ctx), dtype=np.float32)
        for i, f in enumerate(feats):
            x[i, :, : f.shape[1]] = f
        encoded = model.encode(x)
        langs = list(languages)
        if not self.multilingual:
            langs = ["en"] * len(clips)
        elif any(lang is None for lang in langs):
            detected = model.model.detect_language(encoded)
            langs = [lang or detected[i][0][0][2:-2] for i, lang in enumerate(langs)]
        toks = {lang: self.tokenizer(lang, task) for lang in set(langs)}
        prefixes = [p.strip() for p in prefixes] if prefixes else [""] * len(clips)
        prompts = [model.get_prompt(toks[lang], [], without_timestamps=True, prefix=p or None)
                   for lang, p in zip(langs, prefixes)]
        skip = [_count_words(toks[lang], p) for lang, p in zip(langs, prefixes)]
        # A clip Whisper loops on (often a short or quiet one) would decode to the full 448 tokens
        # and hold up every clip in its batch; real speech stays under the cap (see _TOKENS_PER_S).
        longest = max(c.size for c in clips) / audio_io.SAMPLE_RATE
        max_length = min(model.max_length, max(map(len, prompts)) + int(_TOKENS_PER_S * longest) + 10)
        results = model.model.generate(encoded, prompts, beam_size=beam_size, max_length=max_length,
                                       return_scores=True, return_no_speech_prob=True, suppress_blank=True,
                                       suppress_tokens=[-1])
        opts = Options()
        segments: list[list[dict]] = []
        for i, res in enumerate(results):
            tokens = res.sequences_ids[0]  # the prefix's tokens included
            text = toks[langs[i]].decode(tokens)
            avg_logprob = res.scores[0] / (len(tokens) + 1)
            silent = res.no_speech_prob > opts.no_speech_threshold and avg_logprob < opts.log_prob_threshold
            if silent or not text.strip() or guards.compression_ratio(text) > opts.compression_ratio_threshold:
                tokens = []
            elif skip[i] and len(_words_of(toks[langs[i]], tokens)) <= skip[i]:
                tokens = []  # nothing after the prefix
            segments.append([dict(start=0.0, end=clips[i].size / audio_io.SAMPLE_RATE, tokens=tokens, seek=0,
                                  text=text)])
        out: list[tuple[list[Word], str | None]] = [([], langs[i]) for i in range(len(clips))]
        for lang in set(langs):
            idx = [i for i in range(len(clips)) if langs[i] == lang and segments[i][0]["tokens"]]
            if not idx:
                continue
            view = encoded if len(idx) == len(clips) else self._slice(encoded, idx)
            segs = [segments[i] for i in idx]
            model.add_word_timestamps(segs, toks[lang], view, [feats[i].shape[1] for i in idx],
                                      _PREPEND, _APPEND, 0.0)
            for i, seg in zip(idx, segs):
                words = [Word(float(w["start"]), float(w["end"]), w["word"], round(float(w["probability"]), 4))
                         for w in seg[0].get("words") or [] if any(c.isalnum() for c in w["word"])]
                out[i] = (guards.drop_piled(words)[skip[i]:], lang)
        return out

    # ------------------------------------------------------------------ results
    def _result(self, inp: _Input, opts: Options) -> Transcript | Failure:
        if inp.error is not None:
            return Failure(inp.name, inp.error)
        segs = [s for _, s in sorted(inp.segments, key=lambda x: x[0])]
        segs = guards.squash_repeats(segs)
        for n, s in enumerate(segs):
            s.id = n
        return Transcript(
            source=inp.name, language=inp.language, language_probability=inp.language_probability,
            duration=round(inp.duration, 3), segments=segs, task=opts.task, model=self.name,
        )


_SILENCE_RMS = 10 ** (-60 / 20)  # -60 dBFS


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if x.size else 0.0


def _words_of(tokenizer, tokens: list[int]) -> list[str]:
    """The words the aligner will make of these tokens (those with a letter or digit)."""
    words, _ = tokenizer.split_to_word_tokens(list(tokens) + [tokenizer.eot])
    return [w for w in words if any(c.isalnum() for c in w)]


def _count_words(tokenizer, text: str) -> int:
    return len(_words_of(tokenizer, tokenizer.encode(" " + text))) if text else 0


_ENGINES: "OrderedDict[tuple, Whisper]" = OrderedDict()
_ENGINES_LOCK = threading.Lock()
_LOADING: dict[tuple, threading.Lock] = {}
MAX_MODELS = 4  # engines kept loaded; the least recently used one is let go beyond it


def load_model(model: str | None = None, **kw) -> Whisper:
    """A shared engine per (model, settings): loading costs time and memory, so reuse it.
    Every spelling of one model (name, alias, the same folder by another path) is one engine,
    loaded once even when several threads ask at the same moment; at most ``MAX_MODELS`` stay
    cached (least recently used first out; one still in use is freed when its users finish)."""
    key = (canonical(model, "asr"), tuple(sorted(kw.items())))
    with _ENGINES_LOCK:
        if key in _ENGINES:
            _ENGINES.move_to_end(key)
            return _ENGINES[key]
        loading = _LOADING.setdefault(key, threading.Lock())
    with loading:
        with _ENGINES_LOCK:
            if key in _ENGINES:
                return _ENGINES[key]
        engine = Whisper(model, **kw)
        with _ENGINES_LOCK:
            _ENGINES[key] = engine
            _LOADING.pop(key, None)
            while len(_ENGINES) > max(1, MAX_MODELS):
                _ENGINES.popitem(last=False)
    return engine


def loaded_models() -> list[str]:
    """Names of the engines loaded now, least recently used first."""
    with _ENGINES_LOCK:
        return [e.name for e in _ENGINES.values()]


def transcribe(source, model: str | None = None, *, diarize: bool = False, num_speakers: int | None = None,
               min_speakers: int | None = None, max_speakers: int | None = None, channels: str = "mix",
               **options) -> Transcript | list[Transcript | Failure]:
    """Transcribe a path, bytes, file object or float32 array (16 kHz mono) — or a list of them,
    which are batched together and returned in order (failed inputs as Failure).

    ``diarize=True`` labels words and segments with speakers (voxa.diarize; the speaker hints
    and ``channels="split"`` for one speaker per channel go with it)."""
    engine = load_model(model)
    if diarize:
        from . import diarization

        hints = dict(num_speakers=num_speakers, min_speakers=min_speakers, max_speakers=max_speakers,
                     channels=channels)
        if isinstance(source, (list, tuple)):
            return list(diarization.transcribe_many(source, engine, **hints, **options))
        return diarization.transcribe(source, engine, **hints, **options)
    if channels != "mix" or num_speakers or min_speakers or max_speakers:
        raise InputError("speaker options need diarize=True")
    if isinstance(source, (list, tuple)):
        return list(engine.transcribe_many(source, **options))
    return engine.transcribe(source, **options)
