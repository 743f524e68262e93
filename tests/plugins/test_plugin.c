/*
 * A backend plugin written in C from include/hrm_plugin.h alone, for the plugin host's tests
 * (crates/hrm-cli/tests/plugins.rs). Built as it is, it is the backend `constant`: every graph
 * gives one output of shape [batch, 22], all zero (logits of probability 0.5). Each macro turns it
 * into a plugin the host must refuse or survive:
 *
 *   -DPLUGIN_NAME='"failing"' -DFAIL_RUN   session_run fails with a message
 *   -DABI_VERSION=99                       built for another ABI version
 *   -DSHORT_TABLE                          a table that ends before session_run
 *   -DNULL_TABLE                           hrm_plugin_entry returns NULL
 *   -DNO_ENTRY                             no hrm_plugin_entry at all
 */
#include <hrm_plugin.h>

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef PLUGIN_NAME
#define PLUGIN_NAME "constant"
#endif
#ifndef ABI_VERSION
#define ABI_VERSION HRM_PLUGIN_ABI_VERSION
#endif

#define OUTPUTS 22

static _Thread_local char last_error_text[256];

static hrm_plugin_status fail(const char *message) {
    snprintf(last_error_text, sizeof last_error_text, "%s", message);
    return HRM_PLUGIN_ERROR;
}

struct hrm_plugin_session {
    int64_t batch_dim; /* the first input dimension as hrm declared it */
};

static hrm_plugin_status check_options(const char *options_toml, const char *options_dir) {
    (void)options_dir;
    if (!options_toml) return fail("NULL argument");
    if (strstr(options_toml, "broken")) return fail("the test plugin takes no option `broken`");
    return HRM_PLUGIN_OK;
}

static hrm_plugin_status describe(const char *options_toml, const char *options_dir,
                                  hrm_plugin_description *description) {
    if (check_options(options_toml, options_dir) != HRM_PLUGIN_OK) return HRM_PLUGIN_ERROR;
    if (!description) return fail("NULL argument");
    if (description->struct_size < HRM_PLUGIN_DESCRIPTION_SIZE_V1) return fail("description too short");
    snprintf(description->version, sizeof description->version, "1.2.3-test");
    snprintf(description->runtime, sizeof description->runtime, "%s", "");
    snprintf(description->devices, sizeof description->devices, "cpu\nquantum: no quantum computer here");
    return HRM_PLUGIN_OK;
}

static hrm_plugin_status session_new(const hrm_plugin_model *model, const char *options_toml,
                                     const char *options_dir, hrm_plugin_session **session) {
    (void)options_toml;
    (void)options_dir;
    if (!model || !session) return fail("NULL argument");
    if (model->struct_size < HRM_PLUGIN_MODEL_SIZE_V1) return fail("model struct too short");
    if (model->input_count != 1 || model->inputs[0].rank < 1) return fail("the test plugin takes graphs of one input");
    hrm_plugin_session *s = malloc(sizeof *s);
    if (!s) return fail("out of memory");
    s->batch_dim = model->inputs[0].dims[0];
    *session = s;
    return HRM_PLUGIN_OK;
}

static hrm_plugin_status session_info(const hrm_plugin_session *session, hrm_plugin_session_info *info) {
    if (!session || !info) return fail("NULL argument");
    info->output_count = 1;
    snprintf(info->device, sizeof info->device, "cpu");
    info->notes[0] = '\0';
    return HRM_PLUGIN_OK;
}

static hrm_plugin_status session_run(hrm_plugin_session *session, const hrm_plugin_input *inputs,
                                     size_t input_count, hrm_plugin_output *outputs, size_t output_count) {
#ifdef FAIL_RUN
    (void)session;
    (void)inputs;
    (void)input_count;
    (void)outputs;
    (void)output_count;
    return fail("the test plugin's run failed on purpose");
#else
    if (!session || !inputs || input_count != 1 || !outputs || output_count != 1) return fail("bad arguments");
    size_t batch = (size_t)inputs[0].shape.dims[0];
    size_t needed = batch * OUTPUTS;
    outputs[0].len = needed;
    outputs[0].shape.rank = 2;
    outputs[0].shape.dims[0] = (int64_t)batch;
    outputs[0].shape.dims[1] = OUTPUTS;
    if (outputs[0].capacity < needed) return HRM_PLUGIN_BUFFER_TOO_SMALL;
    memset(outputs[0].data, 0, needed * sizeof(float));
    return HRM_PLUGIN_OK;
#endif
}

static void session_free(hrm_plugin_session *session) { free(session); }

static size_t last_error(char *buffer, size_t capacity) {
    size_t len = strlen(last_error_text);
    if (buffer && capacity > 0) snprintf(buffer, capacity, "%s", last_error_text);
    return len;
}

static const hrm_plugin_api API = {
    ABI_VERSION,
#ifdef SHORT_TABLE
    (uint32_t)offsetof(hrm_plugin_api, session_run),
#else
    (uint32_t)sizeof(hrm_plugin_api),
#endif
    PLUGIN_NAME,
    check_options,
    describe,
    session_new,
    session_info,
    session_run,
    session_free,
    last_error,
};

/* The table under another name too, so every variant uses it. */
const hrm_plugin_api *test_plugin_table(void) { return &API; }

#ifndef NO_ENTRY
const hrm_plugin_api *hrm_plugin_entry(void) {
#ifdef NULL_TABLE
    return NULL;
#else
    return &API;
#endif
}
#endif
