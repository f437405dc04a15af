-- Supabase platform stand-in (local and test only, never a migration): Supabase Vault's
-- interface. vault.create_secret/update_secret store a secret, vault.decrypted_secrets
-- reads it back in the clear. Same columns, signatures and grants as supabase_vault 0.3;
-- the stand-in only base64-encodes where the real one encrypts.
create schema vault;

create table vault.secrets (
    id uuid primary key default gen_random_uuid(),
    name text,
    description text not null default '',
    secret text not null,
    key_id uuid,
    nonce bytea default decode(md5(gen_random_uuid()::text), 'hex'),
    created_at timestamptz not null default current_timestamp,
    updated_at timestamptz not null default current_timestamp
);
create unique index on vault.secrets using btree (name) where name is not null;

-- Vault's column order (decrypted_secret after secret), so no wildcard-first ordering:
create view vault.decrypted_secrets as
select  -- noqa: ST06
    s.id,
    s.name,
    s.description,
    s.secret,
    convert_from(decode(s.secret, 'base64'), 'utf8') as decrypted_secret,
    s.key_id,
    s.nonce,
    s.created_at,
    s.updated_at
from vault.secrets as s;

create function vault.create_secret(
    new_secret text,
    new_name text default null,
    new_description text default '',
    new_key_id uuid default null  -- unused, as in Vault 0.3
)
returns uuid
language plpgsql
security definer
set search_path = ''
as $$
declare
    v_id uuid;
begin
    insert into vault.secrets (secret, name, description)
    values (encode(convert_to(new_secret, 'utf8'), 'base64'), new_name, new_description)
    returning id into v_id;
    return v_id;
end;
$$;

create function vault.update_secret(
    secret_id uuid,
    new_secret text default null,
    new_name text default null,
    new_description text default null,
    new_key_id uuid default null  -- unused, as in Vault 0.3
)
returns void
language plpgsql
security definer
set search_path = ''
as $$
begin
    update vault.secrets as s
    set
        secret = coalesce(encode(convert_to(new_secret, 'utf8'), 'base64'), s.secret),
        name = coalesce(new_name, s.name),
        description = coalesce(new_description, s.description),
        updated_at = now()
    where s.id = secret_id;
end;
$$;

-- As on Supabase: postgres may use the Vault, the API roles may not.
revoke all on function vault.create_secret(text, text, text, uuid) from public;
revoke all on function vault.update_secret(uuid, text, text, text, uuid) from public;
grant usage on schema vault to postgres with grant option;
grant select, delete on vault.secrets, vault.decrypted_secrets to postgres with grant option;
grant execute on function vault.create_secret(text, text, text, uuid) to postgres;
grant execute on function vault.update_secret(uuid, text, text, text, uuid) to postgres;
