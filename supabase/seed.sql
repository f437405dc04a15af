-- A small demo market for local development: a few listed issuers on default curves
-- (base price 1.00, step 0.01) and one with a steeper curve. Users sign up through auth.
insert into public.issuer_details (ticker, name, description) values
('AAPL', 'Ava Appleton', 'Indie game developer'),
('BKLN', 'Brooklyn Nakamura', 'Street photographer'),
('CHEF', 'Carla Hernandez', 'Chef and food writer'),
('DJMX', 'Dante Jones', 'DJ and music producer'),
('ECOL', 'Elena Colombo', 'Climate researcher'),
('FITX', 'Felix Ito', 'Fitness coach'),
('GAMR', 'Grace Amari', 'Esports player'),
('HIKE', 'Hugo Keller', 'Mountain guide');

insert into public.issuer_trading (ticker)
select d.ticker from public.issuer_details as d
where d.ticker <> 'GAMR';

insert into public.issuer_trading (ticker, base_price, price_step) values ('GAMR', 2.50, 0.05);
