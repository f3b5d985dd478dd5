/* porter.c - the Porter stemmer (see porter.h). The word is b[0..k]; j
 * marks the end of a stem being tested. Rules follow the paper's steps
 * 1a, 1b, 1c, 2, 3, 4, 5a, 5b. */
#include "porter.h"

#include <string.h>

typedef struct stem {
    char *b;
    int k; /* index of the last letter */
    int j; /* end of the stem before a suffix */
} stem;

/* 1 when b[i] is a consonant: not a vowel, and a y only after a vowel
 * (or at the start) */
static int cons(const stem *z, int i)
{
    switch (z->b[i]) {
    case 'a': case 'e': case 'i': case 'o': case 'u':
        return 0;
    case 'y':
        return i == 0 ? 1 : !cons(z, i - 1);
    default:
        return 1;
    }
}

/* m: the number of VC sequences in b[0..j] */
static int measure(const stem *z)
{
    int n = 0, i = 0;
    for (;;) { /* skip the leading consonants */
        if (i > z->j)
            return n;
        if (!cons(z, i))
            break;
        i++;
    }
    i++;
    for (;;) {
        for (;;) { /* vowels */
            if (i > z->j)
                return n;
            if (cons(z, i))
                break;
            i++;
        }
        i++;
        n++;
        for (;;) { /* consonants */
            if (i > z->j)
                return n;
            if (!cons(z, i))
                break;
            i++;
        }
        i++;
    }
}

/* *v*: b[0..j] contains a vowel */
static int vowel_in_stem(const stem *z)
{
    for (int i = 0; i <= z->j; i++)
        if (!cons(z, i))
            return 1;
    return 0;
}

/* *d: b[i-1..i] is a double consonant */
static int doublec(const stem *z, int i)
{
    return i >= 1 && z->b[i] == z->b[i - 1] && cons(z, i);
}

/* *o: b[i-2..i] is consonant-vowel-consonant and the last is not w, x, y */
static int cvc(const stem *z, int i)
{
    if (i < 2 || !cons(z, i) || cons(z, i - 1) || !cons(z, i - 2))
        return 0;
    char c = z->b[i];
    return c != 'w' && c != 'x' && c != 'y';
}

/* Does b[0..k] end with @s? Sets j to the end of the stem before it. */
/* always inlined: strlen of the literal suffixes folds to a constant */
static inline __attribute__((always_inline)) int ends(stem *z, const char *s)
{
    int l = (int)strlen(s);
    if (l > z->k + 1 || memcmp(z->b + z->k - l + 1, s, (size_t)l) != 0)
        return 0;
    z->j = z->k - l;
    return 1;
}

/* Replaces b[j+1..k] with @s. */
static inline __attribute__((always_inline)) void setto(stem *z, const char *s)
{
    int l = (int)strlen(s);
    memcpy(z->b + z->j + 1, s, (size_t)l);
    z->k = z->j + l;
}

/* setto when m > 0 */
static inline __attribute__((always_inline)) void r(stem *z, const char *s)
{
    if (measure(z) > 0)
        setto(z, s);
}

static void step1ab(stem *z)
{
    if (z->b[z->k] == 's') {
        if (ends(z, "sses"))
            z->k -= 2;
        else if (ends(z, "ies"))
            setto(z, "i");
        else if (z->b[z->k - 1] != 's')
            z->k--;
    }
    if (ends(z, "eed")) {
        if (measure(z) > 0)
            z->k--;
    } else if ((ends(z, "ed") || ends(z, "ing")) && vowel_in_stem(z)) {
        z->k = z->j;
        if (ends(z, "at"))
            setto(z, "ate");
        else if (ends(z, "bl"))
            setto(z, "ble");
        else if (ends(z, "iz"))
            setto(z, "ize");
        else if (doublec(z, z->k)) {
            char c = z->b[z->k];
            if (c != 'l' && c != 's' && c != 'z')
                z->k--;
        } else {
            z->j = z->k;
            if (measure(z) == 1 && cvc(z, z->k))
                setto(z, "e");
        }
    }
}

static void step1c(stem *z)
{
    if (ends(z, "y") && vowel_in_stem(z))
        z->b[z->k] = 'i';
}

/* Steps 2 to 4 switch on the penultimate letter to keep the tests few. */
static void step2(stem *z)
{
    if (z->k < 1)
        return;
    switch (z->b[z->k - 1]) {
    case 'a':
        if (ends(z, "ational")) { r(z, "ate"); break; }
        if (ends(z, "tional")) { r(z, "tion"); break; }
        break;
    case 'c':
        if (ends(z, "enci")) { r(z, "ence"); break; }
        if (ends(z, "anci")) { r(z, "ance"); break; }
        break;
    case 'e':
        if (ends(z, "izer")) { r(z, "ize"); break; }
        break;
    case 'l':
        if (ends(z, "bli")) { r(z, "ble"); break; } /* departure: abli -> able */
        if (ends(z, "alli")) { r(z, "al"); break; }
        if (ends(z, "entli")) { r(z, "ent"); break; }
        if (ends(z, "eli")) { r(z, "e"); break; }
        if (ends(z, "ousli")) { r(z, "ous"); break; }
        break;
    case 'o':
        if (ends(z, "ization")) { r(z, "ize"); break; }
        if (ends(z, "ation")) { r(z, "ate"); break; }
        if (ends(z, "ator")) { r(z, "ate"); break; }
        break;
    case 's':
        if (ends(z, "alism")) { r(z, "al"); break; }
        if (ends(z, "iveness")) { r(z, "ive"); break; }
        if (ends(z, "fulness")) { r(z, "ful"); break; }
        if (ends(z, "ousness")) { r(z, "ous"); break; }
        break;
    case 't':
        if (ends(z, "aliti")) { r(z, "al"); break; }
        if (ends(z, "iviti")) { r(z, "ive"); break; }
        if (ends(z, "biliti")) { r(z, "ble"); break; }
        break;
    case 'g':
        if (ends(z, "logi")) { r(z, "log"); break; } /* departure */
        break;
    default:
        break;
    }
}

static void step3(stem *z)
{
    switch (z->b[z->k]) {
    case 'e':
        if (ends(z, "icate")) { r(z, "ic"); break; }
        if (ends(z, "ative")) { r(z, ""); break; }
        if (ends(z, "alize")) { r(z, "al"); break; }
        break;
    case 'i':
        if (ends(z, "iciti")) { r(z, "ic"); break; }
        break;
    case 'l':
        if (ends(z, "ical")) { r(z, "ic"); break; }
        if (ends(z, "ful")) { r(z, ""); break; }
        break;
    case 's':
        if (ends(z, "ness")) { r(z, ""); break; }
        break;
    default:
        break;
    }
}

static void step4(stem *z)
{
    if (z->k < 1)
        return;
    switch (z->b[z->k - 1]) {
    case 'a':
        if (ends(z, "al")) break;
        return;
    case 'c':
        if (ends(z, "ance")) break;
        if (ends(z, "ence")) break;
        return;
    case 'e':
        if (ends(z, "er")) break;
        return;
    case 'i':
        if (ends(z, "ic")) break;
        return;
    case 'l':
        if (ends(z, "able")) break;
        if (ends(z, "ible")) break;
        return;
    case 'n':
        if (ends(z, "ant")) break;
        if (ends(z, "ement")) break;
        if (ends(z, "ment")) break;
        if (ends(z, "ent")) break;
        return;
    case 'o':
        if (ends(z, "ion") && z->j >= 0 && (z->b[z->j] == 's' || z->b[z->j] == 't')) break;
        if (ends(z, "ou")) break; /* takes care of -ous */
        return;
    case 's':
        if (ends(z, "ism")) break;
        return;
    case 't':
        if (ends(z, "ate")) break;
        if (ends(z, "iti")) break;
        return;
    case 'u':
        if (ends(z, "ous")) break;
        return;
    case 'v':
        if (ends(z, "ive")) break;
        return;
    case 'z':
        if (ends(z, "ize")) break;
        return;
    default:
        return;
    }
    if (measure(z) > 1)
        z->k = z->j;
}

static void step5(stem *z)
{
    z->j = z->k;
    if (z->b[z->k] == 'e') {
        int a = measure(z);
        if (a > 1 || (a == 1 && !cvc(z, z->k - 1)))
            z->k--;
    }
    if (z->b[z->k] == 'l' && doublec(z, z->k) && measure(z) > 1)
        z->k--;
}

size_t sop__porter(char *w, size_t n)
{
    if (n <= 2)
        return n;
    for (size_t i = 0; i < n; i++)
        if (w[i] < 'a' || w[i] > 'z')
            return n;
    stem z = {w, (int)n - 1, 0};
    step1ab(&z);
    if (z.k > 0) {
        step1c(&z);
        step2(&z);
        step3(&z);
        step4(&z);
        step5(&z);
    }
    return (size_t)z.k + 1;
}
