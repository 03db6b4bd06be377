/* grammar.h — constrained sampling: output that must be JSON, optionally matching a JSON Schema
 * (Ollama's "format": "json" or "format": {schema}; OpenAI's response_format).
 *
 * A grammar is a pushdown automaton over bytes built from the schema. Before each draw,
 * grammar_apply sets the logit of every token whose bytes the automaton cannot take to -inf; after
 * the draw, grammar_accept advances it by the chosen token. The vocabulary side (a trie of every
 * token's bytes, plus the tokens that are plain string content) is built once per tokenizer in a
 * struct grammar_vocab and shared by every grammar over that tokenizer.
 *
 * Schema subset: type (one or a list), object with properties / required / additionalProperties,
 * minProperties / maxProperties, array with items / minItems / maxItems, string with minLength / maxLength, number, integer,
 * boolean, null, enum, const, anyOf / oneOf, $ref to "#/$defs/NAME" or "#/definitions/NAME", and
 * nesting. Keywords outside the subset (pattern, format, minimum, ...) are ignored, so output may
 * still violate them. Generated objects list their properties in schema order, required ones
 * always, optional ones possibly skipped; with "properties" given and additionalProperties absent no
 * other keys are produced. Numbers are kept to at most 15 integer digits, 15 fraction digits and a
 * two-digit exponent, so every output parses with ordinary JSON readers; whitespace between tokens
 * is one space or a newline plus up to 20 spaces/tabs of indentation, so generation cannot stall in
 * blank lines. propertyNames (a string schema) bounds the names of additional properties. */
#ifndef HEARTH_SAMPLE_GRAMMAR_H
#define HEARTH_SAMPLE_GRAMMAR_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "base/err.h"

struct tokenizer;
struct grammar_vocab;
struct grammar;

/* Indexes a tokenizer's token bytes (once per model; read-only afterwards, so shareable between
 * threads). tok must outlive the result. */
int grammar_vocab_new(const struct tokenizer *tok, struct grammar_vocab **out, struct err *e);
void grammar_vocab_free(struct grammar_vocab *v);

/* A grammar for one JSON value: schema NULL (or an empty object, or true) accepts any JSON value,
 * as Ollama's "format": "json" does; otherwise the value must match schema.
 * ERR_INVALID names the schema path that hearth cannot use (an unresolvable $ref, a non-object
 * subschema, an empty enum, ...). */
int grammar_new_json(const struct grammar_vocab *v, const json_t *schema, struct grammar **out,
                     struct err *e);
void grammar_free(struct grammar *g);

/* Starts the constraint only once the generated text contains trigger (for reasoning models:
 * "</think>"), so the thinking before it is free. Text after the trigger in the same token is fed to
 * the automaton. Call before the first grammar_apply. */
int grammar_set_trigger(struct grammar *g, const char *trigger, struct err *e);

/* Sets logits[id] = -inf for every token that cannot come next (n_vocab entries). End-of-generation
 * tokens are allowed only once the value is complete. Returns the number of tokens left allowed.
 * Allocates nothing. */
int32_t grammar_apply(struct grammar *g, float *logits);

/* Advances by a chosen token. ERR_INVALID if the grammar does not allow it (it is then unchanged). */
int grammar_accept(struct grammar *g, int32_t token, struct err *e);

/* True once the output so far is a complete value (an end-of-generation token is allowed now). */
bool grammar_done(const struct grammar *g);

/* Back to the start (for reuse on a new generation with the same schema). */
void grammar_reset(struct grammar *g);

#endif
