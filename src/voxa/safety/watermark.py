"""voxa's bundled audio watermark: streaming, keyed, a 32-bit payload, numpy only.

Every sample voxa synthesizes carries it (:mod:`voxa.output` embeds it on the way out); the
payload is the synthesis's audit record number, so a detected mark leads to who made the
audio, when, with which voice and text hash. Chosen by measurement (``benchmarks/watermark.py``)
over the packages that run offline here: perth marks presence only, aware took 71 s to embed
5 s, and AudioSeal's weights come from a model hub (see ``voxa.safety.marks`` for using it
with local weights). Limits, honestly: one block is 4.32 s, so a clip under that
cannot be read; about 10 s are needed under Opus at 32 kb/s or white noise at 20 dB SNR (bit
accuracy 0.977 and 0.982 at 10 s, 0.81 and 0.78 at 5 s); silence carries no mark (see the
benchmark table).

Design (spread-transform dither modulation on log energy ratios, informed embedding)
------------------------------------------------------------------------------------
* Grid: hop H = 20 ms (integer samples at 8/16/22.05/24/44.1/48 kHz), STFT frames of
  2H with a sqrt-Hann window (perfect reconstruction at 50 % overlap); bins are 25 Hz
  apart at every rate.  Three frames form a 60 ms *slot*; the slot's centre 40 ms
  segment depends only on its own three frames, so the embedder can compute exactly
  what the detector will measure there.
* Symbols: the bins 200..3600 Hz are cut at the Opus CELT band edges (200 Hz bands up
  to 1.6 kHz, then 400 Hz) and each of the M=3 symbols per slot owns four adjacent bands,
  signed + - - + (version 2; version 1 dealt the bands to symbols and signed them at random,
  keyed, so its pattern alternated every 200-400 Hz and Opus at 32 kb/s smoothed it away:
  bit accuracy after Opus 0.906 at 10 s and 0.693 at 5 s, against 0.977 and 0.810 for
  version 2, which also lost some on a 5 s mark spliced between clean speech, 0.965 to 0.880).
  Feature of a symbol:
  S = log(sum E of its + bands) - log(sum E of its - bands), E = Hann power spectrum
  of the slot centre.  S is gain invariant and dominated by the strong bins.
* Embedding (STDM/QIM): S is moved to the nearest point of the lattice
  DELTA*(Z + bit/2) + dither (keyed dither per symbol) by scaling its + bins by
  exp(+d) and - bins by exp(-d) over the three frames of the slot (secant
  refinements make the realised S hit the target).  Host interference is cancelled.
  Distortion budget: the running output SNR (signal / (y-x) energy, all slots so far)
  is kept >= SNR_DB; a slot that would break it is embedded with scaled-down d.  So
  every clip has SNR >= ~25 dB whatever its length, and DELTA can be larger.
* Block: T=72 slots x 3 symbols = 216 = 48 sync symbols + 168 coded bits: 32 payload
  bits + CRC-16 -> rate-1/3 K=9 convolutional code (557/663/711, terminated; version 1:
  K=7, 133/165/171, 54 sync symbols), keyed interleave.  The block (4.32 s) repeats; the
  embedder is streaming (holds back <= 80 ms).
* Versions: ``SCHEMES`` lists every layout voxa has shipped; the embedder writes ``CURRENT``
  and the detector tries each in turn, so audio marked by an older voxa stays readable.
* Detection: resample to 8 kHz, Hann frames every 2.5 ms; band energies minus SUB x
  their noise floor (10th percentile over time, removes the bias additive noise puts
  on S), S per frame, phasors U = exp(2 pi i S / DELTA) weighted by the noise-floor SNR,
  folded modulo the block (soft-combines all repetitions), circularly correlated with
  the dithered sync template for all 24 sub-slot phases x T slot offsets.  Top
  candidates are Viterbi decoded, first plainly, then with slots weighted by their
  local (+-REGION slots) sync evidence (helps when the mark covers only part of the
  excerpt, e.g. spliced between clean speech).  A payload is accepted only if the
  sync z-score >= Z_SYNC and CRC-16 holds.
  False accept per excerpt <= len(SCHEMES) * P(max of 24*T null z >= Z_SYNC) * N_CAND * 2 * 2^-16.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


KEY = 0x766F7861                # 'voxa'
HOP_S = 0.02                    # hop; slot = 3 hops
EDGES = [200, 400, 600, 800, 1000, 1200, 1400, 1600, 2000, 2400, 2800, 3200, 3600]  # CELT band edges (Hz)
M = 3                           # symbols per slot
T = 72                          # slots per block (4.32 s)
REP = 1                         # each coded bit is carried by REP symbols
DELTA = 1.2                     # lattice step of S (nepers of energy ratio)
ALPHA = 1.0                     # distortion compensation (fraction of the move to the lattice point)
SNR_DB, SLOT_DB = 24.9, 0.0      # running SNR floor of the output (<=0: off); per-slot SNR floor
SUB = 5.0                       # detector: noise-floor subtraction (x floor percentile)
N_INFO = 48                     # 32 payload + 16 CRC
Z_SYNC, N_CAND = 4.0, 3
REGION = 12                     # detector: half-width (slots) of the local sync evidence window (0: off)
DET_SR = 8000
GATE_DB = 45.0                  # detector ignores frames this far below the loudest
FLOOR_PCT, SNR_HALF = 10, 30.0  # noise-floor percentile; symbol SNR giving weight 1/2
BIN_HI = EDGES[-1] // 25        # bins 0..BIN_HI-1 (25 Hz apart) hold the symbols


@dataclass(frozen=True, eq=False)
class Scheme:
    """One layout of the mark: which bins carry which symbol with which sign, the keyed dither,
    where the sync symbols and coded bits sit in the block, and the convolutional code."""

    name: str                # recorded in the audit log with every synthesis
    sgn: np.ndarray          # (M, BIN_HI): +1 / -1 / 0 per bin
    dith: np.ndarray         # (T, M)
    role: np.ndarray         # (T, M): -1 sync, else the coded bit it carries
    gens: tuple              # generator polynomials (rate 1/len)
    k: int                   # constraint length
    out: np.ndarray          # trellis outputs [generator, input bit, previous state]

    @property
    def n_coded(self) -> int:
        return len(self.gens) * (N_INFO + self.k - 1)

    @property
    def sync_mask(self) -> np.ndarray:
        return (self.role < 0).astype(np.float64)


def _scheme(name, k, gens, layout=None):
    """The keyed scheme. ``layout``: signs of each symbol's contiguous run of CELT bands (symbol m
    owns bands m*len(layout)...); None: bands dealt to symbols and signed at random (keyed)."""
    n_coded = len(gens) * (N_INFO + k - 1)
    rng = np.random.default_rng(KEY)
    eb = [e // 25 for e in EDGES]
    owner = rng.permutation(np.arange(len(eb) - 1) % M)  # band -> symbol
    sgn = np.zeros((M, BIN_HI))
    for m in range(M):
        gs = np.flatnonzero(owner == m)
        signs = rng.permutation(np.arange(len(gs)) % 2) * 2 - 1.0
        for g, sg in zip(gs, signs):
            sgn[m, eb[g]:eb[g + 1]] = sg
    if layout is not None:  # the keyed draw above still happens, so dither and roles follow the same key stream
        sgn[:] = 0
        for m in range(M):
            for j, sg in enumerate(layout):
                g = m * len(layout) + j
                sgn[m, eb[g]:eb[g + 1]] = sg
    dith = rng.uniform(0, DELTA, size=(T, M))
    n_sync = T * M - n_coded * REP
    perm = rng.permutation(T * M)
    role = np.empty(T * M, dtype=np.int64)
    role[perm[:n_sync]] = -1
    role[perm[n_sync:]] = np.arange(n_coded * REP) % n_coded
    ns = 1 << (k - 1)
    out = np.array([[[_parity(((p << 1) | b) & g) for p in range(ns)] for b in (0, 1)] for g in gens])
    return Scheme(name, sgn, dith, role.reshape(T, M), tuple(gens), k, out)


def rate_ok(sample_rate: int) -> bool:
    """The 20 ms hop must be a whole number of samples."""
    return int(sample_rate) % 50 == 0


def crc16(bits):
    reg = 0xFFFF
    for b in bits:
        top = ((reg >> 15) & 1) ^ int(b)
        reg = (reg << 1) & 0xFFFF
        if top:
            reg ^= 0x1021
    return [(reg >> (15 - i)) & 1 for i in range(16)]


def _parity(v):
    return bin(v).count("1") & 1


# Version 2 (the default since 2026-11-25): each symbol owns four adjacent CELT bands, signed
# + - - +, and a K=9 code. After 32 kb/s Opus (libopus "audio") the 10 s bit accuracy went from
# 0.906 to 0.977 on the benchmark's carriers (0.87 to 1.00 with the same clips in a first run);
# version 1's keyed, scattered bands alternate every 200-400 Hz, finer than what the codec keeps
# (CELT alone, libopus "lowdelay", kept version 1 at 1.00 from 10 s). Version 1 is still read,
# so marks made before stay detectable.
V1 = _scheme("voxa-stdm-1", 7, (0o133, 0o165, 0o171))
V2 = _scheme("voxa-stdm-2", 9, (0o557, 0o663, 0o711), layout=(1, -1, -1, 1))
SCHEMES = (V2, V1)              # the detector tries them in this order
CURRENT = V2
NAME = CURRENT.name


def _conv_encode(bits, sc: Scheme):
    state, out = 0, []
    for b in list(bits) + [0] * (sc.k - 1):
        state = ((state << 1) | b) & ((1 << sc.k) - 1)
        out += [_parity(state & g) for g in sc.gens]
    return np.array(out, dtype=np.int64)




def _viterbi(soft, sc: Scheme):
    """Soft Viterbi; soft[i] > 0 means coded bit i is likely 0. Returns N_INFO bits."""
    ns = 1 << (sc.k - 1)
    s = np.arange(ns)
    b_in, p0 = s & 1, s >> 1
    p1 = p0 | (ns >> 1)
    sg = 1 - 2 * sc.out
    metric = np.full(ns, -1e18)
    metric[0] = 0.0
    ng = len(sc.gens)
    n = len(soft) // ng
    back = np.zeros((n, ns), dtype=np.int64)
    for i in range(n):
        r = soft[ng * i: ng * i + ng]
        m0 = metric[p0] + r @ sg[:, b_in, p0]
        m1 = metric[p1] + r @ sg[:, b_in, p1]
        c1 = m1 > m0
        metric = np.where(c1, m1, m0)
        back[i] = np.where(c1, p1, p0)
    state, bits = 0, []
    for i in range(n - 1, -1, -1):
        bits.append(int(state & 1))
        state = back[i, state]
    return bits[::-1][:N_INFO]


def _block_bits(payload, sc: Scheme):
    bits = [(payload >> (31 - i)) & 1 for i in range(32)]
    coded = _conv_encode(bits + crc16(bits), sc)
    return np.where(sc.role < 0, 0, coded[np.maximum(sc.role, 0)])    # (T, M)


def _hann(n):
    return 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n)


class Embedder:
    """Streaming embedder: push(chunk) -> watermarked audio so far (holds back
    <= 4 hops = 80 ms), flush() -> the rest.  Total output length == input length."""

    def __init__(self, sample_rate, payload=0, scheme: Scheme | None = None):
        self.scheme = sc = scheme or CURRENT
        sr = int(sample_rate)
        self.H = int(round(sr * HOP_S))
        if not rate_ok(sr):
            raise ValueError(f"the watermark needs a sample rate that is a multiple of 50 Hz, not {sr}")
        self.N = 2 * self.H
        self.sw = np.sqrt(_hann(self.N))
        self.hw = _hann(self.N)
        nb = self.N // 2 + 1
        self.sgn = np.zeros((M, nb))
        self.sgn[:, :BIN_HI] = sc.sgn
        self.bits = _block_bits(int(payload) & 0xFFFFFFFF, sc)
        self.buf = np.zeros(self.H)          # stream position -H (zero pre-pad)
        self.ola = np.zeros(self.H)
        self.slot = 0
        self.ex = self.ed = 0.0              # running signal / distortion energy
        self.n_in = self.n_out = 0           # n_out counts the pre-pad too

    def _S(self, c):
        P = np.abs(np.fft.rfft(c * self.hw))[:BIN_HI] ** 2
        sgn = self.scheme.sgn
        return np.log((sgn > 0) @ P + 1e-30) - np.log((sgn < 0) @ P + 1e-30)

    def _process_slot(self):
        H = self.H
        X = [np.fft.rfft(self.buf[i * H:i * H + self.N] * self.sw) for i in range(3)]
        P3 = sum(np.abs(Xi) ** 2 for Xi in X)
        ex = P3.sum()
        t = self.slot % T

        def synth(d):
            g = np.exp(d @ self.sgn)
            y = [np.fft.irfft(Xi * g, self.N) * self.sw for Xi in X]
            return y, np.concatenate([y[0][H:] + y[1][:H], y[1][H:] + y[2][:H]])

        def dist(d):
            return P3 @ (np.exp(d @ self.sgn) - 1) ** 2

        d = np.zeros(M)
        y, c = synth(d)
        s0 = self._S(c)
        if np.sum(c ** 2) > 1e-12:
            # nearest lattice point of the bit's coset: DELTA*(k + bit/2) + dither
            off = self.scheme.dith[t] + DELTA * self.bits[t] / 2
            target = off + DELTA * np.round((s0 - off) / DELTA)
            target = s0 + ALPHA * (target - s0)
            slope = np.full(M, 4.0)
            s_prev, d_prev = s0, d.copy()
            for _ in range(3):
                d = d + (target - s_prev) / slope
                d = np.clip(d, -DELTA, DELTA)
                y, c = synth(d)
                s = self._S(c)
                dd = d - d_prev
                ok = np.abs(dd) > 1e-6
                slope[ok] = np.clip((s - s_prev)[ok] / dd[ok], 1.0, 6.0)
                s_prev, d_prev = s, d.copy()
            # distortion budget: running output SNR >= SNR_DB and slot SNR >= SLOT_DB
            allow = ex * 10 ** (-SLOT_DB / 10) if SLOT_DB > 0 else np.inf
            if SNR_DB > 0:
                allow = min(allow, max(0.0, (self.ex + ex) * 10 ** (-SNR_DB / 10) - self.ed))
            for _ in range(3):
                e = dist(d)
                if e <= allow * 1.001:
                    break
                d = d * np.sqrt(allow / e)
            y, c = synth(d)
        self.ex += ex
        self.ed += dist(d)
        out = np.concatenate([self.ola + y[0][:H], y[0][H:] + y[1][:H], y[1][H:] + y[2][:H]])
        self.ola = y[2][H:]
        self.buf = self.buf[3 * H:]
        self.slot += 1
        return out

    def _run(self):
        out = []
        while len(self.buf) >= 4 * self.H:
            out.append(self._process_slot())
        y = np.concatenate(out) if out else np.zeros(0)
        pre = max(0, self.H - self.n_out)
        self.n_out += len(y)
        return y[min(pre, len(y)):]

    def push(self, chunk):
        chunk = np.asarray(chunk, dtype=np.float64).reshape(-1)
        self.n_in += len(chunk)
        self.buf = np.concatenate([self.buf, chunk])
        return self._run().astype(np.float32)

    def flush(self):
        need = self.n_in - max(0, self.n_out - self.H)
        self.buf = np.concatenate([self.buf, np.zeros(4 * self.H)])
        y = self._run()
        return y[:need].astype(np.float32)


def embed(pcm, sample_rate, payload, scheme: Scheme | None = None):
    e = Embedder(sample_rate, payload, scheme)
    return np.concatenate([e.push(pcm), e.flush()])


@dataclass
class Result:
    present: bool
    confidence: float            # z-score of the full decoded pattern (or sync z)
    payload: "int | None"
    sync_z: float = 0.0
    offset_s: float = 0.0        # position of a block start modulo the block length
    soft: "np.ndarray | None" = None
    bits: "list | None" = None   # 32 decoded bits of the best candidate (even if CRC fails)
    scheme: str = ""             # the version read (NAME of the scheme), or the first tried


_BLOCK_FRAMES = 4000   # detector frames per block (10 s): spectra are never held for a whole file
_LOG_LO, _LOG_STEP, _LOG_BINS = -30.0, 0.005, 8400  # noise-floor histogram of log10 power (0.05 dB steps)


class _Spectra:
    """What every scheme's detector reads, in bounded memory: the 8 kHz signal (float32, 32 KB
    a second), the noise floor of each bin (its FLOOR_PCT percentile over time, read from a
    histogram of log power filled block by block) and the loudness gate's threshold. The Hann
    power spectra of 40 ms frames every 2.5 ms (:meth:`power`) are made again block by block
    when a scheme needs them: held whole they took ~180 MB a minute of audio."""

    def __init__(self, x: np.ndarray):
        self.x = x
        self.N, self.Q = int(DET_SR * 2 * HOP_S), int(DET_SR * HOP_S / 8)
        self.nfr = (len(x) - self.N) // self.Q + 1
        self.window = _hann(self.N)
        hist = np.zeros((BIN_HI, _LOG_BINS), np.int64)
        emax = 0.0
        cols = np.arange(BIN_HI)[None, :]
        for a, P in self.blocks():
            emax = max(emax, float(P[:, EDGES[0] // 25:].sum(axis=1).max()))
            k = np.clip(((np.log10(np.maximum(P, 1e-300)) - _LOG_LO) / _LOG_STEP).astype(np.int64), 0, _LOG_BINS - 1)
            np.add.at(hist, (np.broadcast_to(cols, k.shape), k), 1)
        self.floor = self._percentile(hist, FLOOR_PCT) + 1e-20
        self.gate = emax * 10 ** (-GATE_DB / 10)

    def blocks(self):
        """(first frame, power spectra) of each block of frames."""
        for a in range(0, self.nfr, _BLOCK_FRAMES):
            b = min(self.nfr, a + _BLOCK_FRAMES)
            idx = np.arange(self.N)[None, :] + self.Q * np.arange(a, b)[:, None]
            yield a, np.abs(np.fft.rfft(self.x[idx].astype(np.float64) * self.window, axis=1))[:, :BIN_HI] ** 2

    def _percentile(self, hist: np.ndarray, pct: float) -> np.ndarray:
        """Each bin's percentile (numpy's linear rule) from the histogram, at the histogram's
        resolution, interpolating inside the step that holds the rank."""
        rank = pct / 100 * (self.nfr - 1)
        cum = np.cumsum(hist, axis=1)
        j = np.argmax(cum > rank, axis=1)  # first step holding more than `rank` values below or at it
        before = np.where(j > 0, cum[np.arange(BIN_HI), j - 1], 0)
        inside = hist[np.arange(BIN_HI), j]
        frac = (rank - before + 0.5) / np.maximum(inside, 1)
        return 10.0 ** (_LOG_LO + (j + np.clip(frac, 0, 1)) * _LOG_STEP)


def _spectra(pcm, sample_rate):
    """The detector's view of ``pcm`` (:class:`_Spectra`), or None if too short. ``pcm`` may
    also be an iterable of float blocks at ``sample_rate`` (resampled as they come)."""
    from ..audio import Resampler  # FFmpeg's swresample, as everywhere in voxa

    sr = int(sample_rate)
    blocks = [pcm] if isinstance(pcm, np.ndarray) else pcm
    parts, r = [], Resampler(sr, DET_SR)
    for b in blocks:
        b = np.asarray(b, dtype=np.float32)
        if b.ndim > 1:
            b = b.mean(axis=1)
        parts.append(r(b))
    parts.append(r.flush())
    x = np.concatenate(parts) if parts else np.zeros(0, np.float32)
    if len(x) < int(DET_SR * 2 * HOP_S) + 24 * int(DET_SR * HOP_S / 8):
        return None
    return _Spectra(x)


def _phasors(spectra: _Spectra, sc: Scheme):
    """Per frame and symbol: the phasor of S on the lattice, weighted by its reliability."""
    nf = spectra.floor
    plus, minus = (sc.sgn > 0).T.astype(np.float64), (sc.sgn < 0).T.astype(np.float64)
    Np, Nm = nf @ plus, nf @ minus
    U = np.empty((spectra.nfr, M), complex)
    w = np.empty((spectra.nfr, M))
    for a, P in spectra.blocks():
        loud = P[:, EDGES[0] // 25:].sum(axis=1) > spectra.gate
        Sp, Sm = P @ plus, P @ minus
        gate = loud[:, None] & (Sp > 0) & (Sm > 0)
        Sp, Sm = np.maximum(Sp - SUB * Np, 1e-6 * Sp), np.maximum(Sm - SUB * Nm, 1e-6 * Sm)  # remove noise bias
        snr = np.minimum(Sp / Np, Sm / Nm)  # reliability: per-symbol SNR against the noise floor
        S = np.log(Sp + 1e-30) - np.log(Sm + 1e-30)
        wb = gate * snr / (snr + SNR_HALF)
        U[a:a + len(P)] = np.exp(2j * np.pi * S / DELTA) * wb
        w[a:a + len(P)] = wb
    return U, w


def detect(pcm, sample_rate):
    """Detect the watermark (any version in SCHEMES) in any excerpt: an array, or an iterable
    of float blocks (a decoder's output) at ``sample_rate``. Memory: the audio at 8 kHz plus
    about 1 MB per minute per scheme, never the spectra of the whole excerpt. Returns Result."""
    spectra = _spectra(pcm, sample_rate)
    if spectra is None:
        return Result(False, 0.0, None, scheme=SCHEMES[0].name)
    first = None
    for sc in SCHEMES:
        r = _detect(spectra, sc)
        if r.present:
            return r
        first = first or r
    return first


def _detect(spectra, sc: Scheme) -> Result:
    U, w = _phasors(spectra, sc)
    SYNC_MASK, ROLE = sc.sync_mask, sc.role
    ref = np.exp(-2j * np.pi * sc.dith / DELTA)            # bit 0 => Re(U*ref) = +1
    folds, C, V = [], [], []
    for r in range(24):
        Ur, wr = U[r::24], w[r::24]
        n = len(Ur)
        Y = np.zeros((T, M), complex)
        np.add.at(Y, np.arange(n) % T, Ur)
        W2 = np.zeros((T, M))
        np.add.at(W2, np.arange(n) % T, wr ** 2)
        c = np.fft.ifft(np.fft.fft(Y, axis=0) * np.conj(np.fft.fft(np.conj(ref) * SYNC_MASK, axis=0)), axis=0).real.sum(axis=1)
        var = np.fft.ifft(np.fft.fft(W2, axis=0) * np.conj(np.fft.fft(SYNC_MASK, axis=0)), axis=0).real.sum(axis=1) / 2
        folds.append(Y)
        C.append(c / np.sqrt(np.maximum(var, 1e-9)))
        V.append(W2)
    Z = np.concatenate(C)
    order = np.argsort(Z)[::-1][:N_CAND]
    best = None
    for j in order:
        r, o = divmod(int(j), T)
        z = float(Z[j])
        A = np.real(np.roll(folds[r], -o, axis=0) * ref)        # aligned soft values
        for k in range(2 if REGION else 1):
            if k == 1:  # second try: weight slots by local sync evidence (splices, partial marks)
                Ur, wr = U[r::24], w[r::24]
                t = (np.arange(len(Ur)) - o) % T
                a = np.real(Ur * ref[t])
                box = np.ones(2 * REGION + 1)
                lz = np.convolve((a * SYNC_MASK[t]).sum(1), box, 'same') / np.sqrt(
                    np.convolve((wr ** 2 * SYNC_MASK[t]).sum(1), box, 'same') / 2 + 1e-9)
                A = np.zeros((T, M))
                np.add.at(A, t, a * np.clip(lz / 2, 0, 1)[:, None])
            soft = np.bincount(ROLE[ROLE >= 0], weights=A[ROLE >= 0], minlength=sc.n_coded)
            bits = _viterbi(soft, sc)
            if best is None:
                best = (z, r, o, soft, bits[:32])
            if z < Z_SYNC:
                break
            if crc16(bits[:32]) == bits[32:48]:
                val = int("".join(map(str, bits[:32])), 2)
                sym = 1.0 - 2.0 * _block_bits(val, sc)
                zf = float(np.sum(A * sym) / np.sqrt(max(V[r].sum() / 2, 1e-9)))
                return Result(True, zf, val, z, ((o * 24 - r) * HOP_S / 8) % (T * 3 * HOP_S), soft, bits[:32],
                              sc.name)
        if z < Z_SYNC:
            break
    z, r, o, soft, bits = best
    return Result(False, z, None, z, ((o * 24 - r) * HOP_S / 8) % (T * 3 * HOP_S), soft, bits, sc.name)
