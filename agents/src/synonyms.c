/* synonyms.c - colloquial words and the clinical words they stand for, for
 * the built-in embedder (embed_builtin.c). Keys are folded words before
 * stemming; a key maps to one or more words (space-separated). The table
 * is sorted by key (checked by the unit test) and searched by bisection. */
#include <string.h>

#include "embed.h"

static const struct syn {
    const char *word, *means;
} table[] = {
    {"achy", "ache pain"},
    {"barf", "vomit"},
    {"barfing", "vomit"},
    {"belly", "abdomen abdominal"},
    {"bellyache", "abdominal pain"},
    {"blocked", "congestion"},
    {"boiling", "fever"},
    {"bunged", "constipation"},
    {"burning", "burning pain"},
    {"chesty", "cough chest"},
    {"chills", "chills fever"},
    {"clammy", "sweating"},
    {"cold", "cold chills"},
    {"conked", "fainting"},
    {"cramps", "cramp pain"},
    {"crook", "ill"},
    {"dizzy", "dizziness"},
    {"dopey", "drowsiness"},
    {"dumps", "depression"},
    {"eyes", "eye"},
    {"fainted", "fainting"},
    {"feverish", "fever"},
    {"flu", "influenza"},
    {"flushed", "fever"},
    {"gassy", "bloating flatulence"},
    {"gut", "abdomen abdominal"},
    {"guts", "abdomen abdominal"},
    {"heave", "vomit"},
    {"heaving", "vomit"},
    {"hot", "fever"},
    {"hurt", "pain"},
    {"hurting", "pain"},
    {"hurts", "pain"},
    {"itchy", "itching"},
    {"jittery", "anxiety palpitations"},
    {"knackered", "fatigue"},
    {"lightheaded", "dizziness"},
    {"loo", "urination bowel"},
    {"noggin", "head"},
    {"nose", "nasal"},
    {"pee", "urine urination"},
    {"peeing", "urination"},
    {"pins", "tingling"},
    {"pissing", "urination"},
    {"poo", "stool bowel"},
    {"poop", "stool bowel"},
    {"pooping", "stool bowel"},
    {"pounding", "throbbing"},
    {"puke", "vomit"},
    {"puking", "vomit"},
    {"queasy", "nausea"},
    {"racing", "palpitations"},
    {"runny", "runny discharge"},
    {"runs", "diarrhoea"},
    {"shaky", "tremor"},
    {"shits", "diarrhoea"},
    {"shivering", "chills"},
    {"shivery", "chills"},
    {"sick", "nausea ill"},
    {"sicky", "nausea"},
    {"sneezy", "sneezing"},
    {"snotty", "runny nasal"},
    {"sore", "pain sore"},
    {"spinning", "vertigo dizziness"},
    {"spots", "rash spots"},
    {"stiff", "stiffness"},
    {"stomach", "abdomen abdominal stomach"},
    {"stuffy", "congestion"},
    {"sweaty", "sweating"},
    {"throb", "throbbing"},
    {"throbbing", "throbbing pain"},
    {"throwing", "vomit"},
    {"ticker", "heart"},
    {"tired", "fatigue"},
    {"tummy", "abdomen abdominal"},
    {"upchuck", "vomit"},
    {"wee", "urine urination"},
    {"weeing", "urination"},
    {"wheezy", "wheezing"},
    {"wiped", "fatigue"},
    {"wobbly", "dizziness weakness"},
    {"woozy", "dizziness"},
    {"worn", "fatigue"},
    {"yuck", "nausea"},
};

const char *eb_synonym(const char *w, size_t len)
{
    size_t lo = 0, hi = sizeof table / sizeof *table;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strncmp(table[mid].word, w, len);
        if (c == 0 && table[mid].word[len])
            c = 1; /* the table's word is longer */
        if (c == 0)
            return table[mid].means;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

size_t eb_synonym_count(void) { return sizeof table / sizeof *table; }
const char *eb_synonym_at(size_t i, const char **means)
{
    *means = table[i].means;
    return table[i].word;
}
