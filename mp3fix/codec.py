"""What an encoder keeps: the low-pass an MP3 encoder applies at a bitrate.

A codec's low-pass and a recording's own band edge look the same in the
decoded audio: a cliff in the spectrum. Only the file can tell them apart. At
a given bitrate and sample rate an encoder keeps a known band (LAME's table,
below: it made most MP3s there are, and other encoders keep about as much or
more); a cliff far below that is where the *recording* ends (a source sampled
at 22.05 kHz, an old transfer, a file that was band-limited before it was
encoded), and a restorer that fills in above it adds highs the recording
never had.
"""

from __future__ import annotations

# LAME's optimum_bandwidth(): total CBR/ABR bitrate (kbit/s) -> low-pass (Hz),
# taken at the nearest listed bitrate; mono gets 1.5 times the band, and no
# encoder keeps more than 20.5 kHz or the file's Nyquist frequency.
LAME_LOWPASS: tuple[tuple[int, int], ...] = (
    (8, 2000), (16, 3700), (24, 3900), (32, 5500), (40, 7000), (48, 7500), (56, 10000), (64, 11000),
    (80, 13500), (96, 15100), (112, 15600), (128, 17000), (160, 17500), (192, 18600), (224, 19400),
    (256, 19700), (320, 20500),
)

# A cliff below this share of the encoder's band is the recording's own edge.
# Encoders other than LAME keep within ~10% of its band or more (FhG and iTunes
# 16 kHz at 128 kbit/s, 0.94), and the detected cutoff scatters by -13% to +7%
# around LAME's own at 16, 32 and 64 kbit/s (the held-out excerpts).
OWN_EDGE_SHARE = 0.85

# ... and only where the encoder keeps this much or more (LAME: 80 kbit/s
# stereo and up). Below it the guard cannot tell: at 16 and 32 kbit/s LAME
# drops its top bands in most frames, so its cliff often lies at half its
# nominal band (a validation passage that restoration lifts by 0.94 ViSQOL
# would have been left alone), and at 64 kbit/s (11 kHz) recordings that end
# at 10 kHz sit within 10% of the encoder's band.
GUARDED_FROM_HZ = 13000.0


# A chunk whose frames never reach this share of the encoder's band is the
# recording ending (:func:`mp3fix.spectral.frame_reach`): the encoder keeps its
# whole band in some frames even where its cliff lies lower. At 64 kbit/s
# stereo (24 kHz, 11 kHz band), in the shipped model's chunks of the data
# set's excerpts, the two held-out originals that end at 10 kHz reached
# 0.89-0.92 of the band, the other 144 tracks 0.97-1.04 in 702 of 704 chunks
# with a cliff (the other two, 0.82 and 0.93, are an excerpt's short last
# chunk in a quiet passage: left as the MP3 was; ``benchmarks/edges.py``).
# A 30-s excerpt of one of those originals had a chunk reaching 0.940, so the
# share sits between the two (0.940 and 0.967), not at the first one's top.
OWN_REACH_SHARE = 0.955

# ... but only at the settings (bitrate, channels, rate) where that was
# measured to hold: 64 kbit/s stereo at 24 kHz (what the lame command line
# picks), 48 mono at 32 or 44.1 kHz, and 96 stereo at 32 kHz (the lame command
# line's rate) or 44.1 kHz, whose full-band chunks all reached 0.97 of the
# band or more (``benchmarks/edges.py --lame-grid``; at 96 kbit/s a recording
# that ends at 13.9 kHz, 0.92 of the 15.1 kHz band and so above the cliff's
# 0.85, reached 0.91-0.93, the full-band chunks of the training, validation
# and test excerpts 0.975 and up, and restoring it cost 0.25-0.45 ViSQOL;
# model card, item 27); and 256 stereo at 44.1 kHz, where the MP3's frames
# reach as far as the original's, within 0.02 of the band, or the band itself
# where the original goes on above it (an original that ends at 16.8 kHz,
# restored above its edge, made the mean LSD there worse than the MP3's). At
# 128 to 192 kbit/s it cannot tell: LAME drops its band above 16 kHz in many
# chunks of full-band music (0.87-0.95 of the band), as low as an original
# that ends at 16 kHz reaches. Elsewhere
# the encoder keeps less than its table's band in every frame of some music:
# at 22.05 kHz full-band music reached 0.90-0.94 of it in every chunk,
# at 56 kbit/s stereo, at 64 stereo kept at 32 or 44.1 kHz, at 56 or 64 mono
# a few chunks reached 0.72-0.94; at 16 and 32 kbit/s the quiet top bands of
# dark music are dropped in nearly every frame (0.72-0.87). From 13 kHz up
# the cliff decides (``own_edge_hz``).
REACH_SETTINGS: frozenset[tuple[int, int, int]] = frozenset(
    {(64, 2, 24000), (48, 1, 32000), (48, 1, 44100), (96, 2, 32000), (96, 2, 44100), (256, 2, 44100)})

# Frames reaching beyond this share of the band hold no encoder's content (a
# click, the step where a file starts or stops abruptly) and do not count.
REACH_IGNORED_ABOVE_SHARE = 1.25


def lame_lowpass_hz(bitrate_kbps: float, channels: int, sample_rate: int) -> float:
    """The low-pass LAME applies at this average bitrate, channel count and output rate."""
    _, lowpass = min(LAME_LOWPASS, key=lambda e: (abs(e[0] - bitrate_kbps), e[0]))
    band = lowpass * (1.5 if channels == 1 else 1.0)
    return float(min(band, 20500.0, sample_rate / 2))


def encoder_band_hz(codec: str, bitrate_kbps: float | None, channels: int, sample_rate: int) -> float | None:
    """The band an encoder keeps in this file, or None when it cannot be known
    (not an MP3, or no bitrate)."""
    if not codec.startswith("mp3") or not bitrate_kbps or bitrate_kbps <= 0:
        return None
    return lame_lowpass_hz(bitrate_kbps, channels, sample_rate)


def own_edge_hz(band_hz: float | None) -> float | None:
    """Below this frequency a cliff is the recording's own edge, not the encoder's;
    None where that cannot be told (band unknown, or below ``GUARDED_FROM_HZ``)."""
    if not band_hz or band_hz < GUARDED_FROM_HZ:
        return None
    return OWN_EDGE_SHARE * band_hz


def encoder_reach_hz(codec: str, bitrate_kbps: float | None, channels: int, sample_rate: int) -> float | None:
    """Frames of a chunk of this file that reach no higher than this are the
    recording's own edge (:data:`OWN_REACH_SHARE` of the encoder's band); None
    where the reach cannot tell (not one of :data:`REACH_SETTINGS`)."""
    band = encoder_band_hz(codec, bitrate_kbps, channels, sample_rate)
    if band is None or bitrate_kbps is None or (round(bitrate_kbps), channels, sample_rate) not in REACH_SETTINGS:
        return None
    return OWN_REACH_SHARE * band
