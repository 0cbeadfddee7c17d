"""The words, voices and sizes of the synthetic dataset: plain data, so that the command
line can show the defaults without loading numpy or the audio code."""

from __future__ import annotations

# Words that sound like a keyword: the model must learn to reject them.
NEAR_MISSES: tuple[str, ...] = (
    "yet", "know", "upper", "dawn", "write", "stock", "goal", "often", "own", "lift",
)
# The other words of the real Speech Commands v0.02 vocabulary.
OTHER_WORDS: tuple[str, ...] = (
    "bed", "bird", "cat", "dog", "happy", "house", "marvin", "sheila", "tree", "wow",
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
    "backward", "forward", "follow", "learn", "visual",
)
UNKNOWN_WORDS: tuple[str, ...] = NEAR_MISSES + OTHER_WORDS

DEFAULT_CLIPS_PER_WORD: int = 1700
# Unknown words get this fraction of ``clips_per_word`` each unless told otherwise: the
# loader draws ``_unknown_`` as 10% of a split's keyword clips, so 35 words at 60 clips
# cover every split with a few to spare.
UNKNOWN_CLIPS_FRACTION: float = 0.035
# Speakers are drawn once per dataset and split by SPLIT_SHARES (training, validation,
# testing). Clips are cheap here, so the test split is as large as the training split: a
# 0.5 pp paired difference between two models needs about 9,000 test clips to be resolved
# at 95% (REFERENCE.md section 9), and a larger validation split keeps early stopping from
# following noise.
DEFAULT_SPEAKERS: int = 512
SPLIT_SHARES: tuple[float, float, float] = (0.44, 0.12, 0.44)

# English accents bundled with espeakng-loader (espeak-ng-data/lang/gmw).
VOICES: tuple[str, ...] = (
    "en", "en-us", "en-us-nyc", "en-029", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan",
    "en-gb-x-gbcwmd",
)
# Voice variants (espeak-ng-data/voices/!v) that sound like a person; robotic, echoing,
# whispered and novelty variants are left out.
MALE_VARIANTS: tuple[str, ...] = (
    "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "klatt", "klatt2", "klatt3", "klatt4",
    "klatt5", "klatt6", "croak", "Alex", "Andy", "Denis", "Diogo", "Gene", "Gene2", "Henrique",
    "Hugo", "Jacky", "Lee", "Mario", "Michael", "Mike", "Nguyen", "Reed", "adam", "antonio",
    "benjamin", "boris", "david", "ed", "edward", "edward2", "grandpa", "gustave", "ian",
    "iven", "iven2", "iven3", "iven4", "john", "kaukovalta", "marcelo", "max", "michel",
    "miguel", "mike2", "norbert", "pablo", "paul", "pedro", "quincy", "rob", "robert",
    "sandro", "travis", "victor",
)
FEMALE_VARIANTS: tuple[str, ...] = (
    "f1", "f2", "f3", "f4", "f5", "Alicia", "Andrea", "Annie", "anika", "aunty", "belinda",
    "grandma", "linda", "shelby", "steph", "steph2", "steph3", "zac",
)
# Words for the babble noise: none of them is, or sounds much like, a dataset word.
_BABBLE_WORDS: tuple[str, ...] = (
    "the", "people", "water", "morning", "because", "number", "little", "table", "window",
    "garden", "music", "paper", "river", "city", "family", "picture", "evening", "question",
    "simple", "market", "station", "village", "yellow", "mountain", "children", "kitchen",
    "doctor", "pencil", "summer", "winter", "butter", "sugar", "letter", "country", "orange",
    "basket", "camera", "travel", "animal", "purple", "flower", "holiday", "machine", "planet",
    "silver", "ticket", "engine", "island", "jacket", "lemon", "minute", "bottle", "cookie",
    "teacher", "weather", "library", "hospital", "bicycle", "chicken", "monday", "tuesday",
)

