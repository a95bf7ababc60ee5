/* rooms: the room commands of moonpost-chat (/join, /leave, /rooms, /room, /history) and the
 * current room, which the lines typed in the chat menu go to. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chat.h"
#include "term.h"

#define HISTORY_DEFAULT 20
#define HISTORY_MAX 100

/* Tells the broker the current room was read up to what was shown of it. */
static void mark_read(struct chat *ch)
{
    if (ch->room[0] == '\0' || ch->room_seen == 0 || !mp_client_is_connected(ch->client)) return;
    mp_err err = mp_room_read(ch->client, ch->room, ch->room_seen);
    if (err != MP_OK) chat_report(ch, "mark the room read", err);
    ch->room_seen = 0;
}

/* Makes ROOM ("" for none) the room typed lines go to. */
static void set_current(struct chat *ch, const char *room)
{
    mark_read(ch);
    snprintf(ch->room, sizeof ch->room, "%s", room);
    ch->room_seen = 0;
    chat_set_state(ch, ST_CHAT); /* the prompt shows the room */
    if (room[0] != '\0')
        term_print("talking in #%s: type to send, /history to scroll back, /room for the menu",
                   room);
}

void chat_room_join(struct chat *ch, const char *room)
{
    if (!chat_logged_in(ch)) return;
    uint64_t seq = 0;
    mp_err err = mp_room_join(ch->client, room, &seq);
    if (err == MP_ERR_SERVER && mp_client_code(ch->client) == 404) {
        err = mp_room_create(ch->client, room, NULL, 0); /* /join of a new name creates it */
        if (err == MP_OK) term_print("created room #%s", room);
    } else if (err == MP_OK) {
        term_print("joined #%s", room);
    }
    if (err != MP_OK) {
        chat_report(ch, "join", err);
        return;
    }
    set_current(ch, room);
}

void chat_room_leave(struct chat *ch, const char *room)
{
    if (!chat_logged_in(ch)) return;
    if (room[0] == '\0') room = ch->room;
    if (room[0] == '\0') {
        term_print("usage: /leave ROOM (or /leave in the current room)");
        return;
    }
    char left[CHAT_ROOM_MAX + 1];
    snprintf(left, sizeof left, "%s", room); /* ROOM may be ch->room */
    mp_err err = mp_room_leave(ch->client, left);
    if (err != MP_OK) {
        chat_report(ch, "leave", err);
        return;
    }
    term_print("left #%s", left);
    if (strcmp(left, ch->room) == 0) {
        ch->room_seen = 0;
        set_current(ch, "");
    }
}

void chat_room_list(struct chat *ch)
{
    if (!chat_logged_in(ch)) return;
    mark_read(ch);
    mp_room_list *list = NULL;
    mp_err err = mp_room_list_get(ch->client, &list);
    if (err != MP_OK) {
        chat_report(ch, "list rooms", err);
        return;
    }
    if (list->n == 0) term_print("you are in no room: /join ROOM joins (or creates) one");
    for (size_t i = 0; i < list->n; i++) {
        const mp_room_info *e = &list->rooms[i];
        term_print("%s #%s: %llu unread, %llu member(s)%s%s%s",
                   strcmp(e->room, ch->room) == 0 ? "*" : " ", e->room,
                   (unsigned long long)e->unread, (unsigned long long)e->members,
                   e->is_private ? ", private" : "", e->title[0] ? " - " : "", e->title);
    }
    mp_room_list_free(list);
}

void chat_room_say(struct chat *ch, const char *room, const char *text)
{
    if (!chat_logged_in(ch)) return;
    uint64_t seq = 0;
    mp_err err = mp_room_send(ch->client, room, text, strlen(text), MP_BODY_STR, &seq);
    if (err != MP_OK) {
        chat_report(ch, "send to the room", err);
        return;
    }
    /* the broker pushes a message to the other members only: show our own line like theirs */
    const char *me = mp_client_user(ch->client);
    mp_room_msg mine = {.room = room, .seq = seq, .from = me ? me : "me", .body = text,
                        .body_len = strlen(text), .ts = (int64_t)time(NULL) * 1000};
    chat_room_pushed(ch, &mine);
}

/* /room: back to the menu; /room ROOM: ROOM becomes current; /room ROOM TEXT: TEXT to ROOM. */
void chat_room_command(struct chat *ch, const char *room, const char *text)
{
    if (!chat_logged_in(ch)) return;
    if (room[0] == '\0') {
        set_current(ch, "");
        chat_show_menu(ch);
    } else if (text[0] == '\0') {
        set_current(ch, room);
    } else {
        chat_room_say(ch, room, text);
    }
}

void chat_room_history(struct chat *ch, const char *count)
{
    if (!chat_logged_in(ch)) return;
    if (ch->room[0] == '\0') {
        term_print("no current room: /room ROOM or /join ROOM first");
        return;
    }
    long n = count[0] ? strtol(count, NULL, 10) : HISTORY_DEFAULT;
    if (n < 1 || n > HISTORY_MAX) {
        term_print("usage: /history [N], N from 1 to %d", HISTORY_MAX);
        return;
    }
    mp_room_history *h = NULL;
    mp_err err = mp_room_history_get(ch->client, ch->room, 0, (unsigned)n, &h);
    if (err != MP_OK) {
        chat_report(ch, "history", err);
        return;
    }
    term_print("-- the last %zu message(s) of #%s --", h->n, ch->room);
    for (size_t i = 0; i < h->n; i++)
        chat_print_room_msg(&h->messages[i]);
    if (h->n > 0 && h->messages[h->n - 1].seq > ch->room_seen)
        ch->room_seen = h->messages[h->n - 1].seq;
    mp_room_history_free(h);
    mark_read(ch);
}

void chat_room_pushed(struct chat *ch, const mp_room_msg *m)
{
    chat_print_room_msg(m);
    if (strcmp(m->room, ch->room) == 0 && m->seq > ch->room_seen) ch->room_seen = m->seq;
}
