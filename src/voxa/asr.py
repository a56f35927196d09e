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

Language: given, or detected (voxa.langid): the first 30 s of speech of inputs with no language
are packed together like any others, and each piece's language is read from its own slice of
the window's encoder output; windows are decoded in one language, and the rest of an input
waits for its language and is then packed with the inputs of that language. A piece judged
again alone keeps its words from the shared window until its language is known, and uses them
if that is the window's language.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace

import numpy as np

from . import audio as audio_io
from . import guards, langid
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
_LID_FRAMES = 500  # a piece's language is read from its first 10 s of encoder output at most


@dataclass
class Options:
    language: str | None = None
    languages: tuple[str, ...] | None = None  # no language given: detect only among these
    language_hint: str | None = None  # no language given: the language when detection is unsure
    task: str = "transcribe"
    beam_size: int = 2  # measured: as accurate as 3 and 5 on packed windows, faster (benchmarks/asr.py, README)
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
    ordered: bool = False  # pack in time order and track each input's frontier (transcribe_stream)
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
    language_source: str | None = None
    duration: float = 0.0
    reading: bool = True  # still producing pieces
    outstanding: int = 0  # pieces handed out and not yet decoded
    waiting: list[Piece] = field(default_factory=list)  # pieces held back until language is known
    held: list[Piece] = field(default_factory=list)  # judged for language, to decode once it is known
    probe_s: float = 0.0  # seconds of speech sent to be judged for language
    pending: int = 0  # pieces sent to be judged and not judged yet
    more: bool = False  # unsure: the next pieces form a window of its own
    # held pieces already decoded in a window of another input's language, by piece start:
    # (that language, their segments, tails to decode again); used if the input turns out to
    # be in that language, so the piece is not decoded twice
    provisional: dict[float, tuple[str, list[Segment], list[Piece]]] = field(default_factory=dict)
    vote: langid.Vote = field(default_factory=langid.Vote)
    segments: list[tuple[float, Segment]] = field(default_factory=list)
    error: VoxaError | None = None
    done_s: float = 0.0
    read_to: float = 0.0  # end of the last piece read (later pieces start after it)
    frontier: float = float("-inf")  # (ordered runs) every piece starting before this is decoded

    @property
    def detecting(self) -> bool:
        return self.language is None and (self.pending > 0 or bool(self.held) or self.more)


def languages() -> list[str]:
    from faster_whisper.tokenizer import _LANGUAGE_CODES

    return sorted(_LANGUAGE_CODES)


class Whisper:
    """A loaded Whisper model. Thread-compatible, not thread-safe: one call at a time."""

    def __init__(self, model: str | None = None, *, device: str = "cpu", compute_type: str = "int8",
                 cpu_threads: int = 0):
        from faster_whisper import WhisperModel

        from . import allocator

        allocator.tune()  # before CTranslate2's threads exist
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

    def transcribe_stream(self, source: audio_io.Source, **options) -> Iterator[Segment | Transcript]:
        """Transcribe one input, yielding its segments in time order as soon as they are final
        (all speech before them decoded), then the whole Transcript. Windows are packed in time
        order and decoded ``batch_size`` (default 1) at a time, so the first segments come
        after the first window rather than after the whole input; raises VoxaError on bad input."""
        opts = self._options({"batch_size": 1} | options)
        opts.ordered = True
        inputs = self._inputs([source], opts)
        sent: set[int] = set()
        for _ in self._run([source], inputs, opts, None):
            inp = inputs[0]
            if inp.error is not None:
                raise inp.error
            ready = sorted((seg for _, seg in inp.segments if id(seg) not in sent and seg.start < inp.frontier),
                           key=lambda seg: seg.start)
            for seg in ready:
                sent.add(id(seg))
                yield seg
        result = self._result(inputs[0], opts)
        if isinstance(result, Failure):
            raise result.error
        yield result

    def _inputs(self, sources: list, opts: Options) -> list[_Input]:
        inputs = [_Input(i, audio_io.source_name(s), opts.language) for i, s in enumerate(sources)]
        if not self.multilingual:
            for inp in inputs:
                inp.language, inp.language_probability, inp.language_source = "en", 1.0, "given"
        elif opts.language:
            for inp in inputs:
                inp.language_probability, inp.language_source = 1.0, "given"
        return inputs

    def transcribe_many(
        self, sources: Iterable[audio_io.Source], *, on_progress: Callable[[float], None] | None = None,
        **options,
    ) -> Iterator[Transcript | Failure]:
        """Transcribe inputs together, yielding each result in input order as soon as it is done."""
        opts = self._options(options)
        sources = list(sources)
        inputs = self._inputs(sources, opts)
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
        known = languages()

        def code(lang: str) -> str:
            lang = lang.strip().lower()
            if lang not in known:
                raise InputError(f"unknown language code {lang!r} (use ISO 639-1 codes such as en, de, es)")
            if not self.multilingual and lang != "en":
                raise InputError(f"model {self.name} is English-only; use whisper-base for {lang!r}")
            return lang

        if opts.language:
            opts.language = code(opts.language)
        if opts.languages is not None:
            given = [opts.languages] if isinstance(opts.languages, str) else list(opts.languages)
            opts.languages = tuple(dict.fromkeys(code(x) for g in given for x in g.split(",") if x.strip())) or None
        if opts.language_hint:
            opts.language_hint = code(opts.language_hint)
            if opts.languages and opts.language_hint not in opts.languages:
                raise InputError(f"language hint {opts.language_hint!r} is not among the allowed languages")
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
        pool: dict[str | None, list[Piece]] = {}  # language -> pieces ready to pack (None: to be judged)
        own: list[Window] = []  # windows of one unsure input each, to be judged
        prior: Counter = Counter()  # languages of the inputs sure of theirs (langid.decide)
        budget = opts.batch_size * WINDOW_S * _LOOKAHEAD_WINDOWS
        readers = ((inp, self._pieces(src, inp, opts)) for inp, src in zip(inputs, sources))
        current = next(readers, None)

        def progress(inp: _Input, t: float) -> None:
            if on_progress and t > inp.done_s:
                on_progress(t - inp.done_s)
                inp.done_s = t

        while True:
            pooled_s = self._pooled(pool, own, inputs)  # speech read and not yet decoded
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
                inp.read_to = piece.start + piece.duration
                if inp.language is not None:
                    inp.outstanding += 1
                    pool.setdefault(inp.language, []).append(piece)
                elif (inp.probe_s + piece.duration <= WINDOW_S and not inp.waiting and not inp.more
                      and not inp.vote.windows and not inp.vote.slices):
                    inp.probe_s += piece.duration  # its first 30 s of speech: judged where packed
                    inp.pending += 1
                    pool.setdefault(None, []).append(piece)
                else:
                    inp.waiting.append(piece)
            # 2. inputs still unsure: a window of their own with more audio, or a decision
            for inp in inputs:
                if inp is not None and inp.more and inp.pending == 0:
                    self._more(inp, own, pool, prior, opts, force=pooled_s >= budget or current is None)
            # 3. pack and decode one batch
            if not own and not any(pool.values()):
                if current is None:
                    return
                continue
            batch = own[: opts.batch_size]  # windows of their own go alone: short, and never decoded
            own = own[len(batch):]
            for lang in sorted(pool, key=lambda k: k is not None):  # inputs to be judged first
                if batch and batch[0].judge_only or len(batch) >= opts.batch_size:
                    break
                windows = pack(pool.pop(lang), opts.gap_s, lang, together=opts.pack, ordered=opts.ordered)
                room = opts.batch_size - len(batch)
                if current is None and len(windows) - room <= opts.batch_size // 2:
                    # All read: no runt batch. The decoder's cost is mostly per step, whatever
                    # the batch (a window decoded alone took 0.55 s, two 1.4 s, eight 3.1 s).
                    room = len(windows)
                take, rest = windows[:room], windows[room:]
                batch += take
                if rest:  # keep what does not fit this batch for the next round
                    pool[lang] = [p for w in rest for p in w.pieces]
            judged = [w.language is None for w in batch]
            requeue = self._decode(batch, inputs, opts, pool, prior)
            # 4. bookkeeping: pieces released, progress
            for w, was_judged in zip(batch, judged):
                for p in w.pieces:
                    inp = inputs[p.file]
                    if inp is None:
                        continue
                    if not was_judged:
                        inp.outstanding -= 1
                    progress(inp, p.start + p.duration)
            for p in requeue:
                inp = inputs[p.file]
                for q in self._settle(inp, [p]):
                    inp.outstanding += 1
                    pool.setdefault(inp.language, []).append(q)
            for inp in inputs:
                if inp is not None and self._finished(inp) and inp.error is None:
                    progress(inp, inp.duration)
            if opts.ordered:
                self._frontiers(inputs, pool, own)
            yield

    @staticmethod
    def _frontiers(inputs: list[_Input | None], pool, own: list[Window]) -> None:
        """Each input's frontier: the start of its earliest piece not decoded yet (or of what is
        not read yet); nothing while its language is undecided."""
        first: dict[int, float] = {}
        for p in Whisper._undecoded(pool, own, inputs):
            first[p.file] = min(first.get(p.file, float("inf")), p.start)
        for inp in inputs:
            if inp is None:
                continue
            edge = first.get(inp.index, float("inf"))
            if inp.reading:
                edge = min(edge, inp.read_to)
            inp.frontier = edge if inp.language is not None and not inp.provisional else float("-inf")

    @staticmethod
    def _undecoded(pool, own: list[Window], inputs: list[_Input | None]) -> Iterator[Piece]:
        """Pieces read and not yet decoded: the pool, own windows, inputs' waiting and held."""
        yield from (p for pieces in pool.values() for p in pieces)
        yield from (p for w in own for p in w.pieces)
        yield from (p for inp in inputs if inp is not None for p in inp.waiting + inp.held)

    @staticmethod
    def _pooled(pool, own: list[Window], inputs: list[_Input | None]) -> float:
        """Seconds of speech read and not yet decoded."""
        return sum(p.duration for p in Whisper._undecoded(pool, own, inputs))

    @staticmethod
    def _settle(inp: _Input, pieces: list[Piece]) -> list[Piece]:
        """Pieces of an input whose language is now known: those already decoded in that language
        (``_Input.provisional``) keep that result (only their tails are returned, to be decoded);
        the others are returned as they are."""
        out = []
        for p in pieces:
            found = inp.provisional.pop(p.start, None)
            if found is not None and found[0] == inp.language:
                inp.segments.extend((seg.start, seg) for seg in found[1])
                out += found[2]
            else:
                out.append(p)
        return out

    # ------------------------------------------------------------------ language (voxa.langid)
    def _known(self, inp: _Input, lang: str, prob: float, source: str, pool, prior: Counter) -> None:
        """An input's language is decided: what waited for it joins that language's pool."""
        inp.language, inp.language_probability, inp.language_source = lang, round(prob, 4), source
        if source in ("detected", "voted"):
            prior[lang] += 1
        release = self._settle(inp, inp.held) + inp.waiting
        inp.held, inp.waiting, inp.more = [], [], False
        inp.outstanding += len(release)
        pool.setdefault(lang, []).extend(release)

    def _more(self, inp: _Input, own: list[Window], pool, prior: Counter, opts: Options, *, force: bool) -> None:
        """An unsure input: its next 30 s of speech in a window of its own, or, with no audio
        left, the decision by prior, hint or best guess."""
        if not inp.vote.windows and inp.held:  # judged only from slices so far: its own first 30 s
            inp.waiting[:0] = inp.held
            inp.held = []
            force = True
        if inp.waiting and (force or not inp.reading or sum(p.duration for p in inp.waiting) >= WINDOW_S - 1):
            # Judged alone, but decoded later packed with its language's other pieces: a short
            # piece decoded alone loses the context packing gives (WER 17.4% against 11.8% on
            # the 60 LibriSpeech files).
            w = Window(None, judge_only=True)
            while inp.waiting and w.fits(inp.waiting[0], opts.gap_s):
                w.add(inp.waiting.pop(0), opts.gap_s)
            if w.pieces:
                inp.pending += len(w.pieces)
                own.append(w)
                return
        if not inp.waiting and not inp.reading:
            self._known(inp, *langid.decide(inp.vote, allowed=opts.languages, prior=prior,
                                            hint=opts.language_hint), pool, prior)

    def _judge(self, windows: list[Window], encoder_output, inputs: list[_Input], opts: Options, pool,
               prior: Counter) -> tuple[list[Piece], list[set[int]], list[set[int]]]:
        """Language of the windows with none (voxa.langid): evidence for their inputs, decisions,
        then each window's language (that of most of its speech whose input is decided). Returns
        the pieces to queue again in their input's language, and for each window the pieces whose
        words are not its result: all of them (``skip``), and among them those of inputs still
        unsure (``hold``: held back, their words kept in case the input turns out to be in the
        window's language)."""
        import ctranslate2

        model = self.model.model
        rows = [i for i, w in enumerate(windows) if w.language is None]
        whole = [i for i in rows if len({p.file for p in windows[i].pieces}) == 1]
        if whole:
            view = encoder_output if len(whole) == len(windows) else self._slice(encoder_output, whole)
            for i, probs in zip(whole, model.detect_language(view)):
                w = windows[i]
                inp = inputs[w.pieces[0].file]
                inp.vote.add([(t[2:-2], float(q)) for t, q in probs], sum(p.duration for p in w.pieces))
                inp.vote.windows += 1
                inp.pending -= len(w.pieces)
        touched = {windows[i].pieces[0].file for i in whole}
        # Slices of shared windows: each piece's language from its own encoder frames. The
        # window's other speech colours a slice, so an input is decided from slices only when
        # it is sure and speaks the language of most of each window it is in; any other is
        # judged again in a window of its own (it needs one anyway to be decoded in its language).
        odd: set[int] = set()
        shared = [i for i in rows if i not in whole]
        if shared:
            arr = np.asarray(encoder_output)
            spans = [(i, k, *langid.piece_frames(off, p.duration, arr.shape[1]))
                     for i in shared for k, (p, off) in enumerate(zip(windows[i].pieces, windows[i].offsets))]
            # One call for all slices: each slice is tiled to the longest one's length; the decoder's
            # cross-attention is blind to order, so a slice repeated reads as the slice itself.
            spans = [(i, k, a, min(b, a + _LID_FRAMES)) for i, k, a, b in spans]
            n = max(b - a for _, _, a, b in spans)
            tiled = np.stack([np.resize(arr[i, a:b], (n, arr.shape[2])) for i, _, a, b in spans])
            detected = model.detect_language(ctranslate2.StorageView.from_array(np.ascontiguousarray(tiled)))
            by_window: dict[int, list] = {}
            for (i, k, _, _), probs in zip(spans, detected):
                by_window.setdefault(i, []).append((k, [(t[2:-2], float(q)) for t, q in probs]))
            for i, found in by_window.items():
                w, tops, speech = windows[i], [], Counter()
                for k, probs in found:
                    p = w.pieces[k]
                    if opts.languages:
                        probs = [(t, q) for t, q in probs if t in opts.languages] or probs
                    inp = inputs[p.file]
                    inp.vote.add(probs, p.duration)
                    inp.vote.slices += 1
                    inp.pending -= 1
                    touched.add(p.file)
                    tops.append((p.file, probs[0][0]))
                    speech[probs[0][0]] += p.duration
                major = speech.most_common(1)[0][0]
                odd.update(f for f, top in tops if top != major)
        for f in sorted(touched):
            inp = inputs[f]
            if inp is None or inp.language is not None or inp.pending > 0:
                continue
            sure = inp.vote.sure(opts.languages, prior=prior)
            if inp.vote.windows == 0 and (f in odd or not sure):
                inp.vote.clear()  # coloured by the window's other speech: judge it alone
                inp.more = True
            elif sure:
                self._known(inp, sure[0], sure[1], "voted" if inp.vote.windows > 1 else "detected", pool, prior)
            elif (inp.waiting or inp.reading) and inp.vote.windows < langid.MAX_WINDOWS:
                inp.more = True
            else:
                self._known(inp, *langid.decide(inp.vote, allowed=opts.languages, prior=prior,
                                                hint=opts.language_hint), pool, prior)
        requeue, skip, hold = [], [set() for _ in windows], [set() for _ in windows]
        for i in rows:
            w = windows[i]
            speech = Counter()
            for p in w.pieces:
                lang = inputs[p.file].language
                if lang is not None:
                    speech[lang] += p.duration
            w.language = speech.most_common(1)[0][0] if speech and not w.judge_only else None
            for k, p in enumerate(w.pieces):
                inp = inputs[p.file]
                if inp.language is not None and inp.language == w.language:
                    continue
                skip[i].add(k)
                if inp.language is not None:
                    requeue.append(p)
                else:
                    inp.held.append(p)
                    hold[i].add(k)
        return requeue, skip, hold

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

    def _decode(self, windows: list[Window], inputs: list[_Input], opts: Options, pool, prior: Counter
                ) -> list[Piece]:
        """Decode a batch of windows; results go to their inputs. Windows with no language are
        judged first (``_judge``). Returns the pieces (or tails) to be decoded again."""
        fe = self.model.feature_extractor
        frames = encoder_frames(max(w.length for w in windows))
        feats = np.stack([fe(w.audio()[: frames * 160], padding=0)[:, :frames] for w in windows]).astype(np.float32)
        encoder_output = self.model.encode(feats)
        requeue: list[Piece] = []
        skip: list[set[int]] = [set() for _ in windows]
        hold: list[set[int]] = [set() for _ in windows]
        if any(w.language is None for w in windows):
            requeue, skip, hold = self._judge(windows, encoder_output, inputs, opts, pool, prior)
        live = [i for i, w in enumerate(windows) if w.language is not None and len(skip[i] - hold[i]) < len(w.pieces)]
        if not live:
            return requeue
        if len(live) < len(windows):
            encoder_output = self._slice(encoder_output, live)
        windows, skip, hold = [windows[i] for i in live], [skip[i] for i in live], [hold[i] for i in live]
        prompts, tokenizers = [], []
        for w in windows:
            tok = self.tokenizer(w.language, opts.task)
            tokenizers.append(tok)
            previous = tok.encode(" " + opts.initial_prompt.strip()) if opts.initial_prompt else []
            prompts.append(self.model.get_prompt(tok, previous, without_timestamps=not opts.timestamps))
        # A window Whisper loops on would run to 448 tokens and hold up its whole batch; speech
        # needs far fewer (see _TOKENS_PER_S).
        longest = max(w.length for w in windows)
        max_length = min(self.model.max_length, max(map(len, prompts)) + int(_TOKENS_PER_S * longest) + 10)
        results = self.model.model.generate(
            encoder_output, prompts, beam_size=opts.beam_size, max_length=max_length,
            return_scores=True, return_no_speech_prob=True, suppress_blank=True,
            suppress_tokens=[-1], max_initial_timestamp_index=50,
        )
        decoded = []  # (window index, tokens, segments, complete, stats)
        for i, (w, res) in enumerate(zip(windows, results)):
            tokens = res.sequences_ids[0]
            avg_logprob = _avg_logprob(res.scores[0], len(tokens))
            text = tokenizers[i].decode(tokens).strip()
            temperature = 0.0
            segs = None
            if self._doubtful(text, avg_logprob, res.no_speech_prob, opts):
                # Text said again in the padding after the audio (see _drop_past_end) makes a
                # short window look like a loop; judged on what lies in the audio, it may not be.
                segs, complete = self._segments(w, tokens, tokenizers[i], frames, opts)
                self._align(w, segs, tokenizers[i], encoder_output, i, len(windows), frames, opts)
                if self._doubtful("".join(x["text"] for x in segs), avg_logprob, res.no_speech_prob, opts):
                    res, avg_logprob, temperature, _ = self.model.generate_with_fallback(
                        self._slice(encoder_output, i), prompts[i], tokenizers[i],
                        self._fw_options(opts, int(_TOKENS_PER_S * w.length) + 10))
                    tokens, segs = res.sequences_ids[0], None
            if res.no_speech_prob > opts.no_speech_threshold and avg_logprob < opts.log_prob_threshold:
                continue  # Whisper's own silence rule: nothing said here
            if segs is None:
                segs, complete = self._segments(w, tokens, tokenizers[i], frames, opts)
                # Word times: one alignment call per window. A batched call (faster-whisper
                # carries its last_speech_timestamp from one window into the next) moved words,
                # and the piper:joe TTS round trip rose over its 3% WER guard (3.3-4.4%).
                self._align(w, segs, tokenizers[i], encoder_output, i, len(windows), frames, opts)
            decoded.append((i, tokens, segs, complete, dict(
                avg_logprob=round(float(avg_logprob), 4), no_speech_prob=round(float(res.no_speech_prob), 4),
                compression_ratio=round(guards.compression_ratio("".join(x["text"] for x in segs)), 3),
                temperature=temperature)))
        if not opts.timestamps:
            decoded = self._resume(decoded, windows, encoder_output, prompts, tokenizers, frames, opts, max_length)
        for i, tokens, segs, complete, stats in decoded:
            requeue += self._emit(windows[i], tokens, tokenizers[i], segs, complete, opts, inputs, stats,
                                  skip[i], hold[i])
        return requeue

    def _align(self, w: Window, segs, tok, encoder_output, i: int, n: int, frames: int, opts: Options) -> None:
        needs_words = opts.word_timestamps or not opts.timestamps or (
            len(w.pieces) > 1 and any(w.spans_join(x["start"], x["end"]) for x in segs))
        if needs_words and any(x["text"].strip() for x in segs):
            view = self._slice(encoder_output, i) if n > 1 else encoder_output
            self.model.add_word_timestamps([segs], tok, view, [frames], _PREPEND, _APPEND, 0.0)
            _drop_past_end(segs, w.length)

    def _resume(self, decoded, windows, encoder_output, prompts, tokenizers, frames, opts, max_length,
                rounds: int = 2):
        """Whisper ends a packed window early when it takes a join of silence for the end of
        the audio. Rather than encoding the speech it never reached again, in a window of its
        own, the decoder goes on over the same encoder output: its own tokens are forced as
        the prefix (CTranslate2 then bars the end token at the first free step)."""
        refused: set[int] = set()
        for _ in range(rounds):
            todo = []
            for n, (i, tokens, segs, complete, stats) in enumerate(decoded):
                w = windows[i]
                words = [x for s in segs for x in s.get("words") or []]
                if not words or not tokens or n in refused:
                    continue
                reached = words[-1]["end"]
                if any(off > reached and p.duration >= 1.0 and p.retries < 2 and _voiced(p.audio)
                       for p, off in zip(w.pieces, w.offsets)):
                    todo.append(n)
            if not todo:
                break
            rows = [decoded[n][0] for n in todo]
            view = self._slice(encoder_output, rows) if len(rows) < len(windows) else encoder_output
            heads = [list(decoded[n][1]) for n in todo]
            results = self.model.model.generate(
                view, [prompts[i] + h for i, h in zip(rows, heads)], beam_size=opts.beam_size,
                max_length=min(self.model.max_length, max_length + max(map(len, heads))),
                return_scores=True, suppress_blank=True, suppress_tokens=[-1])
            for n, head, res in zip(todo, heads, results):
                i, tokens, segs, complete, stats = decoded[n]
                tok = tokenizers[i]
                seq = list(res.sequences_ids[0])
                text = tok.decode([t for t in seq[len(head):] if t < tok.eot])
                if (not text.strip() or _avg_logprob(res.scores[0], len(seq) - len(head)) < opts.log_prob_threshold
                        or guards.compression_ratio(tok.decode(seq)) > opts.compression_ratio_threshold):
                    refused.add(n)
                    continue  # as before: what it did not reach is queued again (_emit)
                segs, complete = self._segments(windows[i], seq, tok, frames, opts)
                self._align(windows[i], segs, tok, encoder_output, i, len(windows), frames, opts)
                decoded[n] = (i, seq, segs, complete, stats)
        return decoded

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

    def _fw_options(self, opts: Options, max_new_tokens: int | None = None):
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
            multilingual=False, max_new_tokens=max_new_tokens, clip_timestamps="0", hallucination_silence_threshold=None,
            hotwords=None,
        )

    def _segments(self, w: Window, tokens, tok, frames: int, opts: Options) -> tuple[list[dict], bool]:
        """A decoded window's tokens as faster-whisper segment dicts (window time), and whether
        the last one is complete."""
        if opts.timestamps:
            segs, _, complete = self.model._split_segments_by_timestamps(
                tokenizer=tok, tokens=tokens, time_offset=0.0, segment_size=frames,
                segment_duration=frames / 100, seek=0)
        else:
            segs, complete = [dict(start=0.0, end=w.length, tokens=tokens)], True
        # A segment stamped after the window's audio ends was read from the padding: Whisper saying
        # the window's text again (the encoder window is longer than the audio, see encoder_frames).
        segs = [s for s in segs if s["start"] < w.length - _PAST_END_S]
        for s in segs:
            s["text"] = tok.decode([t for t in s["tokens"] if t < tok.eot])
        # The same, stamped just inside the end: a copy squeezed into the audio's last instant
        # ("Water boils at 100 degrees Celsius." again at 2.26-2.32 s, 3 of 150 piper:joe takes).
        segs = [s for s in segs if not _squeezed(s["start"], s["end"], len(s["text"].split()), w.length)]
        for s in segs:
            s["start"], s["end"] = min(s["start"], w.length), min(max(s["end"], s["start"]), w.length)
            s["seek"] = 0
        return segs, complete

    def _emit(self, w: Window, tokens, tok, segs: list[dict], complete: bool, opts: Options, inputs,
              stats, skip: set[int] = frozenset(), hold: set[int] = frozenset()) -> list[Piece]:
        """A decoded window's segments (with words where aligned) to their inputs (but not those
        of pieces in ``skip``, which belong to another language; those in ``hold`` are kept aside
        in ``_Input.provisional`` for their unsure input); returns what is to be decoded again."""
        # How far the decoder got (Whisper's seek): an unfinished last segment is dropped and
        # speech the decoder skipped after it stopped is queued to be decoded again.
        stamps = [t for t in tokens if t >= tok.timestamp_begin]
        if opts.timestamps:
            reached = (stamps[-1] - tok.timestamp_begin) * 0.02 if stamps else w.length
        else:
            words = [x for s in segs for x in s.get("words") or []]
            reached = words[-1]["end"] if words else 0.0
        rest = leftovers(w, reached, min_rest=1.0 if complete else 0.3, voiced=_voiced)
        every = unpack(w, segs, stats)
        unpacked = [(k, seg) for k, seg in every if k not in skip or k in hold]
        hungry = starved(w, unpacked)
        redo = hungry - skip
        if not opts.word_timestamps:
            for _, seg in unpacked:
                seg.words = None
        for k in skip:
            p = w.pieces[k]
            tails = [r for r in rest if _part_of(r, p)]
            rest = [r for r in rest if not _part_of(r, p)]
            if k in hold and k not in hungry and inputs[p.file] is not None:
                inputs[p.file].provisional[p.start] = (w.language, [seg for j, seg in unpacked if j == k], tails)
        unpacked = [(k, seg) for k, seg in unpacked if k not in skip]
        # The decoder ended the window early (no words from some piece on: Whisper took a gap
        # for the end): those pieces are packed again. A piece skipped in the middle of the
        # window's speech is decoded alone.
        spoken = {k for k, seg in every if seg.text.strip()}
        early = set(range(max(spoken, default=-1) + 1, len(w.pieces)))
        for k in redo:
            p = w.pieces[k]
            rest = [r for r in rest if not _part_of(r, p)]
            rest.append(Piece(p.file, p.start, p.audio, p.retries + 1, solo=k not in early))
        for k, seg in unpacked:
            if k in redo:
                continue
            inp = inputs[w.pieces[k].file]
            if inp is None:
                continue
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
        ctx = encoder_frames(max(c.size for c in clips) / audio_io.SAMPLE_RATE)
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
            avg_logprob = _avg_logprob(res.scores[0], len(tokens))
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
            language_source=inp.language_source if inp.language else None,
        )


_SILENCE_RMS = 10 ** (-60 / 20)  # -60 dBFS


def encoder_frames(seconds: float) -> int:
    """The encoder window (mel frames) for audio this long: the shortest of 10, 15, 20 and 30 s
    that leaves 1 s after it. CTranslate2 takes mel input shorter than Whisper's 30 s, and the
    encoder's cost falls with it; a short clip padded to 30 s spends most of it on silence."""
    need = int(seconds * 100) + 100
    return next((c for c in _ENCODER_WINDOWS if need <= c), 3000)


# A word or segment that starts this close to the end of a window's audio, or after it, has no
# audio to be read from.
_PAST_END_S = 0.05


# Speech runs at up to ~6 words/s; a segment at the end of the audio that gives its words less
# than this each was not read from it.
_MIN_WORD_S = 0.05


def _squeezed(start: float, end: float, n: int, length: float, *, aligned: bool = False) -> bool:
    """``n`` words (a segment, or a run of aligned words) stamped from ``start`` to ``end``
    into the last half second of ``length`` s of audio with far too little time for them:
    Whisper saying the text again from the padding after the audio. ``aligned`` words with one
    20 ms frame or less each were not read from any part of the audio."""
    span = end - start
    return n >= 2 and ((start >= length - 0.5 and span < _MIN_WORD_S * n) or (aligned and span <= 0.02 * n))


def _drop_past_end(segs: list[dict], length: float) -> None:
    """Drop aligned words that start after the window's audio ends (``length``, window time),
    and a run of words squeezed into its last instant (:func:`_squeezed`).

    Whisper sometimes writes a short window's text a second (third) time; with no audio left,
    the aligner puts those words in the padding after the audio, where they were stamped as
    zero-length words at the end ("Water boils at 100 degrees Celsius." said twice for a 2.6 s
    clip), or all at the audio's last instant (1 of 250 piper:joe takes: the copy's six words at
    2.24 s of 2.72). A segment that loses words gets its text from the words it keeps."""
    for s in segs:
        words = s.get("words")
        if not words:
            continue
        keep = [x for x in words if x["start"] < length - _PAST_END_S]
        cut = len(keep)
        for k in range(2, len(keep) + 1):  # the longest squeezed run at the end
            if _squeezed(keep[-k]["start"], keep[-1]["end"], k, length, aligned=True):
                cut = len(keep) - k
        keep = keep[:cut]
        if len(keep) < len(words):
            s["words"] = keep
            s["text"] = "".join(x["word"] for x in keep)


def _avg_logprob(score: float, n: int) -> float:
    """Whisper's avg_logprob from a CTranslate2 score, which comes divided by the length
    (length_penalty 1): the sum over the tokens and the end token, divided by their number."""
    return score * n / (n + 1)


def _part_of(tail: Piece, piece: Piece) -> bool:
    """Is ``tail`` (a leftover) a stretch of ``piece``?"""
    return tail.file == piece.file and piece.start <= tail.start < piece.start + piece.duration


def _voiced(audio: np.ndarray) -> bool:
    from .vad import speech_regions

    return bool(speech_regions(audio))


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
