/* menu: the classic chat-room dialogs: the main menu (log in, register, quit), then the chat
 * menu (users, private message, broadcast, received messages, log out). */
#include <stdio.h>
#include <string.h>

#include "chat.h"
#include "term.h"

void chat_show_menu(struct chat *ch)
{
    if (ch->state < ST_CHAT) {
        term_print("\n== moonpost chat (%s:%u) ==\n"
                   "  1) log in\n"
                   "  2) register\n"
                   "  3) quit",
                   ch->host, ch->port);
        return;
    }
    term_print("\n== logged in as %s ==\n"
               "  1) show online users\n"
               "  2) send a private message\n"
               "  3) broadcast to everyone\n"
               "  4) show received messages\n"
               "  5) log out\n"
               "  or type /msg USER TEXT, /all TEXT, /users, /join ROOM, /rooms, /quit, /help",
               mp_client_user(ch->client) ? mp_client_user(ch->client) : "?");
}

void chat_set_state(struct chat *ch, enum chat_state st)
{
    char prompt[CHAT_NAME_MAX + CHAT_ROOM_MAX + 32];
    ch->state = st;
    int secret = 0;
    switch (st) {
    case ST_MAIN:
        snprintf(prompt, sizeof prompt, "choose 1-3> ");
        break;
    case ST_LOGIN_USER:
    case ST_REGISTER_USER:
        snprintf(prompt, sizeof prompt, "user name: ");
        break;
    case ST_LOGIN_PASSWORD:
    case ST_REGISTER_PASSWORD:
        snprintf(prompt, sizeof prompt, "password: ");
        secret = 1;
        break;
    case ST_CHAT:
        snprintf(prompt, sizeof prompt, "%s%s%s> ",
                 mp_client_user(ch->client) ? mp_client_user(ch->client) : "",
                 ch->room[0] ? " #" : "", ch->room);
        break;
    case ST_SEND_TO:
        snprintf(prompt, sizeof prompt, "to: ");
        break;
    case ST_SEND_TEXT:
        snprintf(prompt, sizeof prompt, "message to %s: ", ch->typed_user);
        break;
    case ST_BROADCAST_TEXT:
        snprintf(prompt, sizeof prompt, "message to everyone: ");
        break;
    case ST_CONFIRM_OVERWRITE:
        snprintf(prompt, sizeof prompt, "the file exists: overwrite? (y/n) ");
        break;
    }
    term_prompt(prompt, secret);
}

static void main_menu(struct chat *ch, const char *choice)
{
    if (strcmp(choice, "1") == 0)
        chat_set_state(ch, ST_LOGIN_USER);
    else if (strcmp(choice, "2") == 0)
        chat_set_state(ch, ST_REGISTER_USER);
    else if (strcmp(choice, "3") == 0 || strcmp(choice, "q") == 0)
        ch->quit = 1;
    else if (choice[0] != '\0')
        term_print("choose 1, 2 or 3");
}

static void chat_menu(struct chat *ch, const char *choice)
{
    if (strcmp(choice, "1") == 0)
        chat_users(ch);
    else if (strcmp(choice, "2") == 0)
        chat_set_state(ch, ST_SEND_TO);
    else if (strcmp(choice, "3") == 0)
        chat_set_state(ch, ST_BROADCAST_TEXT);
    else if (strcmp(choice, "4") == 0)
        chat_show_inbox(ch);
    else if (strcmp(choice, "5") == 0)
        chat_logout(ch);
    else if (choice[0] != '\0')
        term_print("choose 1-5, or type /help");
}

static void logged_in_or_back(struct chat *ch, int ok)
{
    chat_set_state(ch, ok ? ST_CHAT : ST_MAIN);
    chat_show_menu(ch);
}

void chat_handle_line(struct chat *ch, const char *line)
{
    int in_menu = ch->state == ST_MAIN || ch->state == ST_CHAT;
    if (in_menu && chat_slash_command(ch, line)) return;
    switch (ch->state) {
    case ST_MAIN:
        main_menu(ch, line);
        break;
    case ST_CHAT:
        if (ch->room[0] != '\0') {
            if (line[0] != '\0') chat_room_say(ch, ch->room, line);
        } else {
            chat_menu(ch, line);
        }
        break;
    case ST_LOGIN_USER:
    case ST_REGISTER_USER:
        if (line[0] == '\0') {
            logged_in_or_back(ch, 0);
            break;
        }
        snprintf(ch->typed_user, sizeof ch->typed_user, "%s", line);
        chat_set_state(ch, ch->state == ST_LOGIN_USER ? ST_LOGIN_PASSWORD : ST_REGISTER_PASSWORD);
        break;
    case ST_LOGIN_PASSWORD:
        logged_in_or_back(ch, chat_login(ch, ch->typed_user, line));
        break;
    case ST_REGISTER_PASSWORD:
        if (chat_register(ch, ch->typed_user, line)) term_print("now choose 1 to log in");
        logged_in_or_back(ch, 0);
        break;
    case ST_SEND_TO:
        if (line[0] == '\0') {
            chat_set_state(ch, ST_CHAT);
            break;
        }
        snprintf(ch->typed_user, sizeof ch->typed_user, "%s", line);
        chat_set_state(ch, ST_SEND_TEXT);
        break;
    case ST_SEND_TEXT:
        if (line[0] != '\0') chat_send(ch, ch->typed_user, line);
        chat_set_state(ch, ST_CHAT);
        break;
    case ST_BROADCAST_TEXT:
        if (line[0] != '\0') chat_broadcast(ch, line);
        chat_set_state(ch, ST_CHAT);
        break;
    case ST_CONFIRM_OVERWRITE:
        chat_confirm_overwrite(ch, line);
        break;
    }
}
