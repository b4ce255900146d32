/* pg_admin.h - for the PostgreSQL store tests: run SQL on an admin connection to url; fails the
 * running test on error. Include after <cmocka.h> and <libpq-fe.h>. */
#ifndef TEST_PG_ADMIN_H
#define TEST_PG_ADMIN_H

static void pg_admin(const char *url, const char *sql)
{
    PGconn *pg = PQconnectdb(url);
    PGresult *r;
    if (PQstatus(pg) != CONNECTION_OK) fail_msg("connect: %s", PQerrorMessage(pg));
    PQclear(PQexec(pg, "SET client_min_messages = warning"));
    r = PQexec(pg, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
        fail_msg("%s: %s", sql, PQresultErrorMessage(r));
    PQclear(r);
    PQfinish(pg);
}

#endif
