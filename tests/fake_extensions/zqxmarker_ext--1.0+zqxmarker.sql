CREATE FUNCTION zqxmarker_ext_function() RETURNS int LANGUAGE sql AS 'SELECT 1';
